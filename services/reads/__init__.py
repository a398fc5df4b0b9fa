"""The fast reads that restate a domain rule in SQL, each beside the ORM reference it must agree with.

The reads every update makes run on the driver (``storage.hot.Hot``): one Core statement, one
round trip, no ORM. Such a statement writes out in SQL what a rule module says through the ORM
(which profile a district follows, which seats are open to a child, the queue's order, the move of
a number), so it can drift from the rule without anything failing. Here each one sits in a module
of its own beside its *reference*: the same answer read the slow way, through the ORM and the rule
modules' own functions. tests/services/test_reads_equivalence.py checks every pair on generated data, on
SQLite and PostgreSQL; a module added here without a check there fails that test.

* ``seats``: /seats, the state-order seats open to each linked application (``services.claiming``);
* ``cards``: the /status cards (``services.status``);
* ``moves``: why a number moved, per cause (``services.queue.move_causes``);
* ``ranking``: a queue's numbers at one version (``services.queue_numbers``);
* ``profile``: the district's rule profile inside such a statement (``Ctx.profile``'s rule).

Hot reads that restate no rule (a chat's settings, its language) stay with their services."""
