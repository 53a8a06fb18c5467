//! A user's display name.

use super::InvalidInput;

pub const MAX_NAME_CHARS: usize = 255;

/// A name: trimmed, 1 to 255 characters, no control characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserName(String);

impl UserName {
    /// # Errors
    /// When the trimmed name is empty, longer than 255 characters, or holds
    /// control characters.
    pub fn parse(raw: &str) -> Result<Self, InvalidInput> {
        let name = raw.trim();
        if name.is_empty() {
            return Err(InvalidInput("name must not be empty".into()));
        }
        if name.chars().count() > MAX_NAME_CHARS {
            return Err(InvalidInput(format!(
                "name must be at most {MAX_NAME_CHARS} characters"
            )));
        }
        if name.chars().any(char::is_control) {
            return Err(InvalidInput(
                "name must not contain control characters".into(),
            ));
        }
        Ok(Self(name.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plain_name_is_accepted_as_is() {
        assert_eq!(UserName::parse("John Doe").unwrap().as_str(), "John Doe");
    }

    #[test]
    fn surrounding_whitespace_is_trimmed() {
        assert_eq!(UserName::parse("  Ada \n").unwrap().as_str(), "Ada");
    }

    #[test]
    fn exactly_255_characters_are_accepted_counting_characters_not_bytes() {
        let name = "é".repeat(255);
        assert_eq!(UserName::parse(&name).unwrap().as_str(), name);
    }

    #[test]
    fn bad_names_are_rejected() {
        let long = "a".repeat(256);
        for (case, raw) in [
            ("empty", ""),
            ("blank", "   "),
            ("256 chars", long.as_str()),
            ("NUL", "a\0b"),
            ("newline inside", "a\nb"),
        ] {
            assert!(UserName::parse(raw).is_err(), "accepted {case}");
        }
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            #[test]
            fn any_input_is_parsed_or_refused_never_a_panic(raw in any::<String>()) {
                if let Ok(parsed) = UserName::parse(&raw) {
                    let value = parsed.as_str();
                    prop_assert_eq!(value, value.trim());
                    prop_assert!(!value.is_empty());
                    prop_assert!(value.chars().count() <= MAX_NAME_CHARS);
                    prop_assert!(!value.chars().any(char::is_control));
                }
            }

            #[test]
            fn a_valid_name_is_kept_trimmed(raw in "[ ]{0,3}[a-zA-Z0-9À-ÿ'. -]{0,40}[a-zA-Z][ ]{0,3}") {
                let parsed = UserName::parse(&raw).unwrap();
                prop_assert_eq!(parsed.as_str(), raw.trim());
            }
        }
    }
}
