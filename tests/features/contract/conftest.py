"""A small hand-made data set that follows the contract, written as CSV files."""

from __future__ import annotations

from pathlib import Path

import pytest

EVENTS_CSV = """\
event_id,user_id,ts,event_type,item_id,category,brand,price,quantity,channel,campaign_id,offer_id,journey,propensity,source
e1,u1,2026-01-05T10:00:00+01:00,view,i1,coffee,kalo,9.5,,web,,,,,tracker
e2,u1,2026-01-05T09:05:00Z,add_to_cart,i1,coffee,kalo,9.5,1,web,,,,,tracker
e3,u1,1767604200,purchase,i1,coffee,kalo,9.5,2,web,,,,,tracker
e4,u1,1767604200000,purchase,i1,coffee,kalo,9.5,-1,web,,,,,returns
e5,u2,2026-01-06 08:00:00.250-05:00,message_sent,,,,,,email,nl-w01,voucher-5,,0.25,crm
e5,u2,2026-01-06 08:00:00.250-05:00,message_sent,,,,,,email,nl-w01,voucher-5,,0.25,crm
e6,u3,2026-01-07T12:00:00+00:00,signup,,,,,,,,,,,app
"""

USERS_CSV = """\
user_id,signup_ts,country,timezone,consent_email,consent_sms
u1,2025-12-01T00:00:00+00:00,FR,Europe/Paris,true,no
u2,2025-11-01T00:00:00+00:00,US,America/New_York,1,0
u3,2026-01-07T12:00:00+00:00,JP,Asia/Tokyo,yes,
"""

ITEMS_CSV = """\
item_id,category,brand,price,margin
i1,coffee,kalo,9.5,0.3
"""

OFFERS_YAML = """\
offers:
  - offer_id: voucher-5
    kind: voucher
    value: 5
    cost: 5
    min_order_value: 15
    max_per_user: 2
    valid_from: 2026-01-01T00:00:00+00:00
    valid_to: 2026-03-01T00:00:00+00:00
  - offer_id: coffee-guide
    kind: content
    value: 0
    cost: 0
    categories: [coffee]
"""


def write_dataset(directory: Path, **replace: str) -> Path:
    """Write the good data set, with any file's text replaced by keyword (events=...)."""
    directory.mkdir(parents=True, exist_ok=True)
    files = {"events.csv": EVENTS_CSV, "users.csv": USERS_CSV, "items.csv": ITEMS_CSV,
             "offers.yaml": OFFERS_YAML}
    for name, text in files.items():
        text = replace.get(name.split(".")[0], text)
        (directory / name).write_text(text)
    return directory


@pytest.fixture
def dataset(tmp_path: Path) -> Path:
    return write_dataset(tmp_path / "data")
