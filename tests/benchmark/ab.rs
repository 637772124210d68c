//! `teleapi-bench ab BASE [GROUP…]`: every figure of the table A/B against another commit's
//! bench on the same machine in one run (`tests/bench ab REV` builds that commit beside this
//! one). The two benches run in turn, base first, group by group, `BENCH_PAIRS` times (3 by
//! default); each figure's medians are compared, and a change counts as worse only where it goes
//! against the figure's target by more than the run-to-run spread of either side.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

/// The groups with timings (the capacity model has none, and rewrites docs/capacity.md).
const GROUPS: [&str; 8] = [
    "round-trips",
    "floor",
    "handler",
    "memory",
    "cold-start",
    "callbacks",
    "media",
    "amd",
];

/// One figure as a bench printed it: its value and target columns.
#[derive(Debug, Clone, PartialEq)]
struct Printed {
    value: String,
    target: String,
}

/// The rows of a bench's table (`| figure | value | target | met | detail`), by figure.
fn rows(output: &str) -> BTreeMap<String, Printed> {
    output
        .lines()
        .filter_map(|line| {
            let cells: Vec<&str> = line.strip_prefix('|')?.splitn(5, '|').collect();
            let [figure, value, target, _, _] = cells[..] else {
                return None;
            };
            let figure = figure.trim();
            (figure != "figure" && !figure.starts_with('-')).then(|| {
                let printed = Printed {
                    value: value.trim().to_owned(),
                    target: target.trim().to_owned(),
                };
                (figure.to_owned(), printed)
            })
        })
        .collect()
}

/// The number a value states (`1.05x`, `0.140% of a core (…)`, `16.4 ms`, `2,667`); none for
/// a value of several (`1 read + 1 write`), which is compared as text.
fn number(value: &str) -> Option<f64> {
    let stated = value.split('(').next().unwrap_or_default();
    let mut numbers = stated
        .split(|c: char| !(c.is_ascii_digit() || c == '.' || c == ','))
        .filter(|part| part.chars().any(|c| c.is_ascii_digit()));
    let first = numbers.next()?;
    if numbers.next().is_some() {
        return None;
    }
    first.replace(',', "").trim_matches('.').parse().ok()
}

/// Which way is better for a figure, from its target: `Some(true)` when higher is.
fn higher_is_better(target: &str) -> Option<bool> {
    match target.trim_start().chars().next()? {
        '>' => Some(true),
        '<' => Some(false),
        _ => None,
    }
}

fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    sorted[sorted.len() / 2]
}

fn spread(values: &[f64]) -> f64 {
    let (low, high) = values
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(l, h), v| {
            (l.min(*v), h.max(*v))
        });
    high - low
}

/// How a figure moved from `base` to `head` (each side's runs).
fn verdict(base: &[f64], head: &[f64], higher_better: Option<bool>) -> &'static str {
    let change = median(head) - median(base);
    let noise = spread(base).max(spread(head));
    match higher_better {
        None => "-",
        _ if change.abs() <= noise => "same",
        Some(true) if change > 0.0 => "better",
        Some(false) if change < 0.0 => "better",
        _ => "WORSE",
    }
}

fn run(bench: &Path, group: &str) -> String {
    let output = Command::new(bench)
        .arg(group)
        .output()
        .unwrap_or_else(|e| panic!("{}: {e}", bench.display()));
    assert!(
        output.status.success(),
        "{} {group} failed: {}",
        bench.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Runs the A/B and prints its table; answers whether any figure got worse.
pub fn ab(base: &Path, groups: &[String]) -> bool {
    let head = std::env::current_exe().expect("the bench's own path");
    let pairs: usize = std::env::var("BENCH_PAIRS")
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(3);
    let groups: Vec<&str> = if groups.is_empty() {
        GROUPS.to_vec()
    } else {
        groups.iter().map(String::as_str).collect()
    };
    // figure -> (its target, the base's values, the head's values)
    type Runs = (String, Vec<String>, Vec<String>);
    let mut figures: BTreeMap<(usize, String), Runs> = BTreeMap::new();
    for (order, group) in groups.iter().enumerate() {
        for pair in 1..=pairs {
            eprintln!("ab: {group}, pair {pair} of {pairs}");
            for (side, bench) in [(0, base), (1, head.as_path())] {
                for (figure, printed) in rows(&run(bench, group)) {
                    let entry = figures.entry((order, figure)).or_default();
                    if entry.0.is_empty() {
                        entry.0 = printed.target;
                    }
                    [&mut entry.1, &mut entry.2][side].push(printed.value);
                }
            }
        }
    }
    println!("\n| figure | base | head | change | verdict |\n|---|---|---|---:|---|");
    let mut worse = false;
    for ((_, figure), (target, base, head)) in &figures {
        let numbers =
            |values: &[String]| values.iter().map(|v| number(v)).collect::<Option<Vec<_>>>();
        let shown = |values: &[String]| match values {
            [first, rest @ ..] if rest.iter().all(|v| v == first) => first.clone(),
            _ => values.join("; "),
        };
        let (change, verdict) = match (numbers(base), numbers(head)) {
            (Some(b), Some(h)) if !b.is_empty() && !h.is_empty() => {
                let change = if median(&b) == 0.0 {
                    format!("{:+}", median(&h))
                } else {
                    format!("{:+.1}%", 100.0 * (median(&h) / median(&b) - 1.0))
                };
                (change, verdict(&b, &h, higher_is_better(target)))
            }
            // A figure one side lacks, or a value that is not a number: compared as text.
            _ if base == head => (String::new(), "same"),
            _ if base.is_empty() || head.is_empty() => (String::new(), "only one side"),
            _ => (String::new(), "differs"),
        };
        worse |= verdict == "WORSE";
        println!(
            "| {figure} ({target}) | {} | {} | {change} | {verdict} |",
            shown(base),
            shown(head)
        );
    }
    worse
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_table_is_read_back_and_judged() {
        let printed = "teleapi-bench on x\n\n| figure | value | target | met | runs\n|---|---|---|---|---\n\
                       | backend floor | 1.05x | <= 1.15 | yes | teleapi-local median 31.99 ms\n\
                       | media: new calls a second | 97.6/s (97.6, 99.1) | >= 50/s | yes | all\n";
        let rows = rows(printed);
        assert_eq!(rows.len(), 2);
        assert_eq!(rows["backend floor"].value, "1.05x");
        assert_eq!(number("2,667 at default"), Some(2667.0));
        assert_eq!(number("0.140% of a core"), Some(0.14));
        assert_eq!(number("97.6/s (97.6, 99.1)"), Some(97.6));
        assert_eq!(number("1 read + 1 write + 1 send"), None);
        assert_eq!(number("n/a"), None);
        assert_eq!(higher_is_better(">= 0.8"), Some(true));
        assert_eq!(higher_is_better("<= 1.5"), Some(false));
        assert_eq!(higher_is_better("-"), None);
        // Within the spread: the same; past it, against the target: worse.
        assert_eq!(
            verdict(&[1.0, 1.1, 1.2], &[1.25, 1.3, 1.1], Some(false)),
            "same"
        );
        assert_eq!(
            verdict(&[1.0, 1.05, 1.1], &[1.4, 1.5, 1.45], Some(false)),
            "WORSE"
        );
        assert_eq!(
            verdict(&[1.0, 1.05, 1.1], &[1.4, 1.5, 1.45], Some(true)),
            "better"
        );
        assert_eq!(verdict(&[1.0], &[2.0], None), "-");
    }
}
