"""The fault suite's Django test app: a ledger and a shelf of books."""
