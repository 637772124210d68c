//! `application/x-www-form-urlencoded` bodies, parsed strictly: a value that does not decode to
//! UTF-8 is an error naming the parameter, never a silently replaced character.

use std::borrow::Cow;

use percent_encoding::percent_decode;

use crate::sid::shorten;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FormError {
    #[error("the value of parameter '{0}' is not valid UTF-8 once percent-decoded")]
    InvalidUtf8Value(String),
    #[error("a parameter name is not valid UTF-8 once percent-decoded")]
    InvalidUtf8Name,
}

/// The decoded name/value pairs of a form body, in the order they were sent.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Form {
    pairs: Vec<(String, String)>,
}

impl Form {
    pub fn parse(body: &[u8]) -> Result<Self, FormError> {
        let mut pairs = Vec::new();
        for field in body.split(|b| *b == b'&').filter(|f| !f.is_empty()) {
            let (name, value) = match field.iter().position(|b| *b == b'=') {
                Some(eq) => (&field[..eq], &field[eq + 1..]),
                None => (field, &field[..0]),
            };
            let name = decode(name).ok_or(FormError::InvalidUtf8Name)?;
            let value = decode(value).ok_or_else(|| FormError::InvalidUtf8Value(shorten(&name)))?;
            pairs.push((name, value));
        }
        Ok(Self { pairs })
    }

    /// A form of decoded pairs (one the service builds itself).
    pub fn from_pairs(pairs: Vec<(String, String)>) -> Self {
        Self { pairs }
    }

    pub fn is_empty(&self) -> bool {
        self.pairs.is_empty()
    }

    pub fn pairs(&self) -> impl Iterator<Item = (&str, &str)> {
        self.pairs.iter().map(|(n, v)| (n.as_str(), v.as_str()))
    }
}

/// `+` is a space, `%XX` a byte; a `%` not followed by two hex digits stays as it is (the WHATWG
/// rule). The bytes must then be UTF-8.
fn decode(raw: &[u8]) -> Option<String> {
    let plus_as_space: Cow<[u8]> = if raw.contains(&b'+') {
        Cow::Owned(
            raw.iter()
                .map(|b| if *b == b'+' { b' ' } else { *b })
                .collect(),
        )
    } else {
        Cow::Borrowed(raw)
    };
    let bytes: Vec<u8> = percent_decode(&plus_as_space).collect();
    String::from_utf8(bytes).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(body: &str) -> Vec<(String, String)> {
        Form::parse(body.as_bytes())
            .unwrap()
            .pairs()
            .map(|(n, v)| (n.to_owned(), v.to_owned()))
            .collect()
    }

    #[test]
    fn decodes_pairs_in_order() {
        assert_eq!(
            pairs("Url=https%3A%2F%2Fexample.com%2Fa%3Fb%3Dc&Method=GET&&Mute"),
            [
                ("Url".into(), "https://example.com/a?b=c".into()),
                ("Method".into(), "GET".into()),
                ("Mute".into(), String::new()),
            ]
        );
        assert_eq!(pairs("a=1+2%2B3"), [("a".into(), "1 2+3".into())]);
        assert_eq!(
            pairs("a=100%&b=%zz"),
            [("a".into(), "100%".into()), ("b".into(), "%zz".into())]
        );
        assert_eq!(pairs("T=%C3%A9"), [("T".into(), "é".into())]);
        assert!(Form::parse(b"").unwrap().is_empty());
    }

    #[test]
    fn invalid_utf8_is_an_error_naming_the_parameter() {
        assert_eq!(
            Form::parse(b"Url=%FF%FE"),
            Err(FormError::InvalidUtf8Value("Url".into()))
        );
        assert_eq!(
            Form::parse(b"Url=\xff"),
            Err(FormError::InvalidUtf8Value("Url".into()))
        );
        assert_eq!(Form::parse(b"%C3=x"), Err(FormError::InvalidUtf8Name));
    }
}
