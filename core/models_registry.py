"""Import every models module so `db.metadata` knows the whole schema (Alembic, tests)."""

import accounts.models  # noqa: F401
import campaigns.models  # noqa: F401
import journeys.models  # noqa: F401
import tracking.models  # noqa: F401
import web.models  # noqa: F401
