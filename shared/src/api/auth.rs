//! HTTP Basic authentication (`AccountSid:AuthToken`) and who may act for which account.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use lambda_http::http::{HeaderMap, header};

use super::Services;
use super::error::ApiError;
use crate::domain::{Account, AccountSid, AccountStatus, AuthToken};

/// Compared against when the account does not exist, so that a wrong sid costs the same time as
/// a wrong token.
const DECOY_TOKEN: &str = "00000000000000000000000000000000";

fn credentials(headers: &HeaderMap) -> Option<(AccountSid, String)> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, encoded) = value.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = STANDARD.decode(encoded.trim()).ok()?;
    let decoded = String::from_utf8(decoded).ok()?;
    let (sid, token) = decoded.split_once(':')?;
    Some((sid.parse().ok()?, token.to_owned()))
}

/// The account whose credentials the request carries. Never says which half was wrong.
pub async fn authenticate(services: &Services, headers: &HeaderMap) -> Result<Account, ApiError> {
    let Some((sid, token)) = credentials(headers) else {
        return Err(ApiError::Unauthenticated);
    };
    let account = services.accounts.account(&sid).await?;
    let expected = account
        .as_ref()
        .map_or_else(|| AuthToken::new(DECOY_TOKEN), |a| a.auth_token.clone());
    match account {
        Some(account) if expected.matches(&token) => {
            if account.status == AccountStatus::Active {
                Ok(account)
            } else {
                Err(ApiError::AccountNotActive)
            }
        }
        _ => {
            // Evaluated even when there is no account, for the timing's sake.
            let _ = expected.matches(&token);
            Err(ApiError::Unauthenticated)
        }
    }
}

/// The account named in the path, if `caller` may act for it: itself or one of its active
/// subaccounts. The same answer whether the other account exists or not.
pub async fn authorize(
    services: &Services,
    caller: Account,
    path_account: &str,
) -> Result<Account, ApiError> {
    let denied = || ApiError::PermissionDenied(crate::domain::sid::shorten(path_account));
    let sid: AccountSid = path_account.parse().map_err(|_| denied())?;
    if sid == caller.sid {
        return Ok(caller);
    }
    let target = services.accounts.account(&sid).await?.ok_or_else(denied)?;
    if !caller.may_act_for(&target) {
        return Err(denied());
    }
    if target.status != AccountStatus::Active {
        return Err(ApiError::AccountNotActive);
    }
    Ok(target)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(header::AUTHORIZATION, value.parse().unwrap());
        headers
    }

    #[test]
    fn parses_basic_credentials() {
        let sid = "AC0123456789abcdef0123456789abcdef";
        let encoded = STANDARD.encode(format!("{sid}:tok:en"));
        let (parsed, token) = credentials(&headers(&format!("Basic {encoded}"))).unwrap();
        assert_eq!(parsed.as_str(), sid);
        assert_eq!(token, "tok:en");
        assert!(credentials(&headers(&format!("basic {encoded}"))).is_some());
        for bad in [
            "Bearer abc".to_owned(),
            "Basic".to_owned(),
            "Basic !!!".to_owned(),
            format!("Basic {}", STANDARD.encode("no-colon")),
            format!("Basic {}", STANDARD.encode("ACnotasid:token")),
            format!("Basic {}", STANDARD.encode([0xff, 0xfe, b':', b'x'])),
        ] {
            assert!(credentials(&headers(&bad)).is_none(), "{bad}");
        }
        assert!(credentials(&HeaderMap::new()).is_none());
    }
}
