-- Transformations (hookd_sandbox::transform): code, on/off, variables and when it was
-- last set, as JSON per endpoint; NULL is none. An attempt says whether one ran.
ALTER TABLE endpoint ADD COLUMN transformation TEXT;
ALTER TABLE attempt ADD COLUMN transformed BOOLEAN NOT NULL DEFAULT false;
