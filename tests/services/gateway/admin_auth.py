"""The admin token the gateway tests run with: every write route needs a caller (services.gateway.auth)."""

ADMIN_TOKEN = "test-admin-token-0123456789"
AS_ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
