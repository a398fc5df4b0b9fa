"""The sandbox city seeds cleanly and every flow can start from it."""

from bot.demo import seed


async def test_demo_city_is_valid_and_playable(kz) -> None:
    summary = await seed(kz, applications=400)
    assert summary["applications"] >= 400
    stats = await kz.stats()
    assert stats["applications"]["queued"] == summary["applications"]
    view = await kz.queue_view(summary["example"])
    assert view.number is not None and view.number >= 1
    # a state kindergarten's seats find someone of that birth year in a seeded district
    pub = await kz.publish_seats({"kindergarten": "ALM-BOS-01", "birth_year": view.application.birth_year,
                                  "language": "kk", "count": 3})
    assert pub.seat_ids
