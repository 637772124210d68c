"""Twilio's official Python helper library drives the phone numbers of a running teleapi-local
(unchanged but for where its HTTP client sends requests): create numbers with their voice
settings, fetch one, change and clear its settings, list them filtered and page by page, delete
one and create its PhoneNumber again; and the refusals, as the library's exceptions.

Usage: twilio_numbers.py TELEAPI_LOCAL_BINARY
"""

import sys

from twilio.base.exceptions import TwilioRestException

import local
from local import SID


def refused(action, status, code):
    try:
        action()
    except TwilioRestException as error:
        assert (error.status, error.code) == (status, code), (error.status, error.code, error.msg)
        return
    sys.exit(f"expected {status}/{code}, the request was accepted")


def main(binary):
    with local.running(binary) as base:
        numbers = local.client(base).incoming_phone_numbers
        front = numbers.create(
            phone_number="+15557650001",
            voice_url="https://app.example.com/voice",
            voice_method="GET",
            status_callback="https://app.example.com/status",
        )
        assert front.sid.startswith("PN") and len(front.sid) == 34, front.sid
        assert front.account_sid == SID, front.account_sid
        assert front.phone_number == "+15557650001", front.phone_number
        assert front.friendly_name == "+15557650001", front.friendly_name
        assert (front.voice_url, front.voice_method) == ("https://app.example.com/voice", "GET")
        assert front.voice_fallback_url is None, front.voice_fallback_url
        assert front.status_callback == "https://app.example.com/status", front.status_callback
        assert front.capabilities["voice"] is True, front.capabilities
        assert front.date_created is not None, front.date_created

        fetched = numbers(front.sid).fetch()
        assert (fetched.sid, fetched.voice_url) == (front.sid, front.voice_url), fetched

        changed = numbers(front.sid).update(
            friendly_name="Front desk",
            voice_fallback_url="https://app.example.com/fallback",
            status_callback="",
        )
        assert changed.friendly_name == "Front desk", changed.friendly_name
        assert changed.voice_fallback_url == "https://app.example.com/fallback", changed.voice_fallback_url
        assert changed.voice_fallback_method == "POST", changed.voice_fallback_method
        assert changed.status_callback is None, changed.status_callback
        assert changed.voice_url == front.voice_url, "what was not given stays"

        sales = numbers.create(phone_number="+15557650002", friendly_name="Sales")
        support = numbers.create(phone_number="+442071838750", voice_url="https://app.example.com/uk")
        listed = [n.sid for n in numbers.list(page_size=2)]
        assert listed == [support.sid, sales.sid, front.sid], ("newest first, across pages", listed)
        assert [n.sid for n in numbers.list(phone_number="555765")] == [sales.sid, front.sid]
        assert [n.sid for n in numbers.list(phone_number="+44*07")] == [support.sid]
        assert [n.sid for n in numbers.list(friendly_name="Sales")] == [sales.sid]

        # Refusals: a number taken, a number that is not E.164, a bad URL, an unknown number.
        refused(lambda: numbers.create(phone_number="+15557650001"), 400, 21422)
        refused(lambda: numbers.create(phone_number="5557650003"), 400, 21421)
        refused(lambda: numbers.create(phone_number="+15557650003", voice_url="ftp://x"), 400, 21205)
        refused(lambda: numbers("PN" + "0" * 32).fetch(), 404, 20404)
        refused(lambda: numbers(front.sid).update(voice_method="PUT"), 400, 21209)

        assert numbers(sales.sid).delete() is True
        refused(lambda: numbers(sales.sid).fetch(), 404, 20404)
        again = numbers.create(phone_number="+15557650002")
        assert again.sid != sales.sid, "a deleted number's PhoneNumber is free again"
        assert sorted(n.phone_number for n in numbers.list()) == [
            "+15557650001",
            "+15557650002",
            "+442071838750",
        ]
    print("twilio_numbers: ok")


if __name__ == "__main__":
    main(sys.argv[1])
