-- An attempt's request headers as sent (credential values hidden) and the answer's
-- headers, as one JSON text ({"request": [[name, value]...], "response": [...]});
-- NULL for attempts made before, or expunged. Text, not JSONB: it is only shown.
ALTER TABLE attempt ADD COLUMN headers TEXT;
