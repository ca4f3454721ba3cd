"""The bot classifier scored on a labelled corpus (tests/data/bot_corpus.json).

Every hit goes through the real ingest path (`tracking.ingest.apply_hits`, in time order, in
drainer-sized batches), so order-dependent evidence (an open before a click, every link in a
burst) is judged as it would be in production. The test prints precision and recall of
"machine" per class and overall, and fails below 0.95 for either.
"""

from __future__ import annotations

import json
from collections import Counter
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from core.db import db
from tests.builders import make_sent_message, make_tracked_campaign
from tracking import ingest, services
from tracking.models import Event

CORPUS = Path(__file__).parent / "data" / "bot_corpus.json"
DELIVERED = datetime(2030, 5, 6, 9, 30)
BATCH = 100  # entries per drainer batch, smaller than the CLI's default: more boundaries
THRESHOLD = 0.95


@pytest.fixture(autouse=True)
def _fresh_caches():
    services._LOCAL.clear()
    ingest._LINK_COUNTS.clear()


def load() -> dict:
    return json.loads(CORPUS.read_text(encoding="utf-8"))


def test_corpus_is_large_labelled_and_sourced():
    doc = load()
    hits = [h for m in doc["messages"] for h in m["hits"]]
    assert len(hits) == doc["hits"] >= 200
    assert {h["label"] for h in hits} == {"machine", "human"}
    assert all(h["source"] and h["ua"] is not None and h["ip"] for h in hits)
    classes = {h["class"] for h in hits}
    assert {"apple_mpp", "gmail_proxy", "yahoo_proxy", "outlook_proxy", "desktop_browser",
            "mobile_browser", "safe_links", "mimecast", "proofpoint", "barracuda", "previewer",
            "honeypot"} <= classes


def test_classifier_precision_and_recall_of_machine_on_the_corpus(app, capsys):
    doc = load()
    campaigns = {n: make_tracked_campaign(links=[f"https://brand.example/{n}/{i}"
                                                 for i in range(n)])
                 for n in sorted({m["links"] for m in doc["messages"]})}
    truth: dict[str, tuple[str, str]] = {}
    hits: list[ingest.Hit] = []
    for message in doc["messages"]:
        send = make_sent_message(campaigns[message["links"]], sent_at=DELIVERED)
        for i, h in enumerate(message["hits"]):
            key = f"corpus:{message['id']}:{i}"
            truth[key] = (h["label"], h["class"])
            hits.append(ingest.Hit(h["kind"], send.id, DELIVERED + timedelta(seconds=h["at"]),
                                   h.get("link"), h["ua"], h["ip"], key=key,
                                   how=h.get("how", "")))
    hits.sort(key=lambda h: h.occurred_at)
    for start in range(0, len(hits), BATCH):
        ingest.apply_hits(hits[start:start + BATCH])
        db.session.commit()
    predicted = dict(db.session.execute(select(Event.event_key, Event.machine)).all())
    assert predicted.keys() == truth.keys()

    outcome: Counter = Counter()
    per_class: dict[str, Counter] = {}
    wrong = []
    for key, (label, cls) in truth.items():
        said = "machine" if predicted[key] else "human"
        cell = ("t" if said == label else "f") + ("p" if said == "machine" else "n")
        outcome[cell] += 1
        per_class.setdefault(cls, Counter())[cell] += 1
        if said != label:
            wrong.append(f"  {key} {cls}: labelled {label}, classified {said}")
    precision = outcome["tp"] / ((outcome["tp"] + outcome["fp"]) or 1)
    recall = outcome["tp"] / ((outcome["tp"] + outcome["fn"]) or 1)
    with capsys.disabled():
        print(f"\nbot corpus: {len(truth)} hits, {outcome['tp'] + outcome['fn']} machine; "
              f"machine precision {precision:.3f}, recall {recall:.3f} "
              f"(tp {outcome['tp']}, fp {outcome['fp']}, fn {outcome['fn']}, "
              f"tn {outcome['tn']})")
        for cls, c in sorted(per_class.items()):
            print(f"  {cls:18} correct {c['tp'] + c['tn']:3}/{sum(c.values()):3}")
        print("\n".join(wrong))
    assert precision >= THRESHOLD and recall >= THRESHOLD, "\n".join(wrong)
