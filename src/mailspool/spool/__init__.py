"""The spool format: batch files, where each record lives in a store, and the ledger."""
