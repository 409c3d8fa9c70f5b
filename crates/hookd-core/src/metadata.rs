//! Free-form string metadata on applications and endpoints, within bounds.

use std::collections::BTreeMap;

use crate::InvalidValue;

pub const MAX_ENTRIES: usize = 100;
pub const MAX_KEY_LEN: usize = 256;
pub const MAX_VALUE_LEN: usize = 4_096;

pub fn validate(metadata: &BTreeMap<String, String>) -> Result<(), InvalidValue> {
    if metadata.len() > MAX_ENTRIES {
        return Err(InvalidValue::new(format!(
            "at most {MAX_ENTRIES} metadata entries are allowed"
        )));
    }
    for (k, v) in metadata {
        if k.is_empty() || k.len() > MAX_KEY_LEN {
            return Err(InvalidValue::new(format!(
                "metadata keys must be 1 to {MAX_KEY_LEN} characters"
            )));
        }
        if v.len() > MAX_VALUE_LEN {
            return Err(InvalidValue::new(format!(
                "the metadata value of {k:?} must be at most {MAX_VALUE_LEN} characters"
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds() {
        let mut m = BTreeMap::new();
        assert!(validate(&m).is_ok());
        m.insert("k".into(), "v".repeat(MAX_VALUE_LEN));
        assert!(validate(&m).is_ok());
        m.insert("big".into(), "v".repeat(MAX_VALUE_LEN + 1));
        assert!(validate(&m).is_err());
        let many: BTreeMap<String, String> = (0..=MAX_ENTRIES)
            .map(|i| (i.to_string(), String::new()))
            .collect();
        assert!(validate(&many).is_err());
        let empty_key: BTreeMap<String, String> = [(String::new(), "x".into())].into();
        assert!(validate(&empty_key).is_err());
    }
}
