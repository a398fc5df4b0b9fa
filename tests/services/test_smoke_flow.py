from tests.support.world import World


async def test_publish_offer_claim_admit(world: World) -> None:
    a, b, c = await world.apps(world.row(), world.row(), world.row())
    assert [await world.number(n) for n in (a, b, c)] == [1, 2, 3]
    pub = await world.publish(1)
    assert [o[2] for o in pub.offers] == [a]
    refs = await world.kz.claim(a, pub.seat_ids[0], confirmed_by="tg:1")
    assert len(refs) == 1
    assert await world.number(a) is None
    assert await world.number(b) == 1
    ref = await world.kz.admit(refs[0].id)
    assert ref.status == "admitted"
    stats = await world.kz.stats()
    assert stats["applications"] == {"admitted": 1, "queued": 2}
