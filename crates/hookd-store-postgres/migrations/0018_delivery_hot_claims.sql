-- A claim changes only `lease_until` and `lease_owner`. With no index on either, and
-- room left on each page for a row's next version, PostgreSQL writes the claim as a
-- heap-only (HOT) update: one new row version on the same page and no index entry,
-- where it wrote six (one per index of the table, the lease owner's among them).
-- Releasing a node's leases reads the pending rows (`delivery_due`) instead: only
-- pending rows are leased.
DROP INDEX IF EXISTS delivery_lease_owner;
ALTER TABLE delivery SET (fillfactor = 80);
