//! Answering-machine detection on a leg the worker placed (`MachineDetection`): from the
//! answer, the far end's speech is listened to until [`crate::amd::Detector`] decides. Then the
//! control plane hears who answered (`call.answered_by`, with the `AsyncAmdStatusCallback` to
//! tell, if asynchronous), and a synchronous detection's RCML is fetched with `AnsweredBy`.

use super::*;
use crate::amd::Detector;
use teleapi_domain::call::AnsweredBy;

/// A detection running on a leg.
pub(super) struct Detection {
    detector: Detector,
    /// The answer: its durations count from then.
    since: Instant,
}

impl Detection {
    /// When the detector looks again if nothing is heard.
    pub(super) fn deadline(&self) -> Instant {
        self.since + self.detector.deadline()
    }
}

impl Leg {
    /// The leg answered: detection starts if the call asked for it. `false` if its RCML waits
    /// for the answer (synchronous detection).
    pub(super) fn start_detection(&mut self) -> bool {
        let Some(asked) = &self.machine_detection else {
            return true;
        };
        let detector = Detector::new(asked, |seconds| self.shared.scaled(seconds));
        self.detection = Some(Detection {
            detector,
            since: Instant::now(),
        });
        self.relisten();
        asked.asynchronous
    }

    /// The far end started or stopped speaking: the detector hears it.
    pub(super) async fn detect_speech(&mut self, speaking: bool) {
        let Some(detection) = &mut self.detection else {
            return;
        };
        let at = detection.since.elapsed();
        if let Some(answer) = detection.detector.speech(speaking, at) {
            self.detected(answer).await;
        }
    }

    /// The detector's time came, with nothing heard.
    pub(super) async fn detect_time(&mut self) {
        let Some(detection) = &mut self.detection else {
            return;
        };
        let at = detection.since.elapsed();
        if let Some(answer) = detection.detector.time(at) {
            self.detected(answer).await;
        }
    }

    async fn detected(&mut self, answer: AnsweredBy) {
        if let Some(source) = self.report_detection(answer).await {
            self.run(source).await;
        }
    }

    /// The call ended before the detection decided: `unknown`, so that an asynchronous
    /// detection's callback is still told.
    pub(super) async fn detection_cut_short(&mut self) {
        if self.detection.is_some() {
            self.report_detection(AnsweredBy::Unknown).await;
        }
    }

    /// Reports who answered; what a synchronous detection's call runs now, with `AnsweredBy`.
    async fn report_detection(&mut self, answer: AnsweredBy) -> Option<Source> {
        let detection = self.detection.take()?;
        self.relisten();
        let asked = self.machine_detection.take();
        let duration = detection.since.elapsed().as_millis() as u64;
        tracing::info!(call_sid = %self.info.sid, answered_by = answer.as_str(), duration, "worker: answered by");
        let callback = asked
            .as_ref()
            .filter(|a| a.asynchronous)
            .and_then(|a| a.callback.clone());
        self.event(|seq| EventKind::CallAnsweredBy {
            seq,
            answered_by: answer,
            machine_detection_duration: duration,
            callback,
        })
        .await;
        let synchronous = asked.is_some_and(|a| !a.asynchronous);
        if !synchronous || self.status.is_final() {
            return None;
        }
        let source = self.pending.take()?;
        Some(source.with("AnsweredBy", answer.as_str().to_owned()))
    }

    /// The media listens to the far end while a detection or a `<Record>` needs it.
    pub(super) fn relisten(&self) {
        let recording = matches!(&self.wait, Wait::Record(r) if r.beep.is_none());
        let on = self.detection.is_some() || recording;
        self.shared.media.listen(self.sid(), on);
    }
}
