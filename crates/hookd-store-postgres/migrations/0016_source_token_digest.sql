-- A source's URL token (`/in/{token}`) is a credential: the database keeps its
-- SHA-256 in token and old_token (what a request is looked up by) and the token
-- itself sealed in token_sealed (what the API shows as ingestUrl). Rows from before
-- are converted when the store opens (secrets::prepare), which holds the key.
ALTER TABLE source ADD COLUMN token_sealed text;
