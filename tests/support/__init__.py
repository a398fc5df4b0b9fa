"""What the tests share, and the only thing a test module imports from tests/ (fixtures come from the
conftest.py files; tests/project/test_architecture.py keeps it so):

* ``telegram``: the mocked Bot session (aiogram's tests/mocked_bot.py shape) and the harness that
  feeds the real Dispatcher;
* ``world``: districts, kindergartens, applications, linked chats, and reads of the outbox;
* ``databases``: SQLite and PostgreSQL databases of a test's own, and the test Redis;
* ``api``: the registry API's client and its OpenAPI checks; ``cli``: the operators' CLI;
* ``delivery``: a recording channel, a send policy without pacing, a real SMTP server;
* ``concurrency``: one chat's requests at once over several bot instances;
* ``documents``: the files a parent sends and the chat that sends them through the Bot API stand-in;
* ``standin``: ``kezek`` as a separate process beside the Bot API stand-in, and waiting on it;
* ``pgcluster``: a private PostgreSQL cluster to stop and restart;
* ``lanes``: which test files are slow (the fast lane leaves them out)."""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]  # the checkout
