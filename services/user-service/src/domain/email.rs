//! An email address.

use super::InvalidInput;

pub const MAX_EMAIL_CHARS: usize = 255;

/// A syntactically valid address of at most 255 characters, trimmed. Case is
/// kept as given; uniqueness ignores it (the database enforces that).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email(String);

impl Email {
    /// # Errors
    /// When the address is longer than 255 characters or not of the form
    /// `local@domain` with a dotted domain.
    pub fn parse(raw: &str) -> Result<Self, InvalidInput> {
        let email = raw.trim();
        if email.chars().count() > MAX_EMAIL_CHARS {
            return Err(InvalidInput(format!(
                "email must be at most {MAX_EMAIL_CHARS} characters"
            )));
        }
        let valid = email_address::EmailAddress::parse_with_options(
            email,
            email_address::Options::default()
                .without_display_text()
                .without_domain_literal(),
        )
        .is_ok_and(|parsed| parsed.domain().contains('.'));
        if !valid {
            return Err(InvalidInput(format!(
                "{email:?} is not a valid email address"
            )));
        }
        Ok(Self(email.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_demo_addresses_are_accepted() {
        for raw in [
            "john@example.com",
            "john.updated@example.com",
            "a+tag@sub.example.org",
        ] {
            assert_eq!(Email::parse(raw).unwrap().as_str(), raw);
        }
    }

    #[test]
    fn case_is_kept_and_whitespace_trimmed() {
        assert_eq!(
            Email::parse(" John@Example.COM ").unwrap().as_str(),
            "John@Example.COM"
        );
    }

    #[test]
    fn bad_addresses_are_rejected() {
        let long = format!("{}@example.com", "a".repeat(250));
        for raw in [
            "",
            "john",
            "john@",
            "@example.com",
            "john@localhost",
            "john doe@example.com",
            "John <john@example.com>",
            long.as_str(),
        ] {
            assert!(Email::parse(raw).is_err(), "accepted {raw:?}");
        }
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            #[test]
            fn any_input_is_parsed_or_refused_never_a_panic(raw in any::<String>()) {
                if let Ok(parsed) = Email::parse(&raw) {
                    let value = parsed.as_str();
                    prop_assert_eq!(value, value.trim());
                    prop_assert!(!value.is_empty());
                    prop_assert!(value.chars().count() <= MAX_EMAIL_CHARS);
                    prop_assert!(!value.chars().any(char::is_control));
                }
            }

            #[test]
            fn a_plain_address_is_accepted_as_given(local in "[a-z0-9][a-z0-9._+-]{0,20}[a-z0-9]", domain in "[a-z][a-z0-9-]{0,15}[a-z0-9]\\.[a-z]{2,6}") {
                let raw = format!("{local}@{domain}");
                prop_assume!(!local.contains(".."));
                let parsed = Email::parse(&raw).unwrap();
                prop_assert_eq!(parsed.as_str(), raw.as_str());
            }
        }
    }
}
