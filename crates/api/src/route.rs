//! Splitting a request path into Firecracker's resources, for the VMM
//! side's dispatch: `/drives/{id}`, `/network-interfaces/{id}`, `/vm/config`,
//! `/balloon/statistics` and the one-word paths.

use thiserror::Error;

use crate::api::ApiResponse;

/// Longest id accepted, as Firecracker's instance id check.
pub const MAX_ID_LEN: usize = 64;

#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum RouteError {
    #[error("query strings are not supported: {0:?}")]
    QueryString(String),
    #[error("invalid path {0:?}")]
    BadPath(String),
    #[error("missing id in path {0:?}")]
    MissingId(String),
    #[error("invalid id {0:?}: an id is 1 to {MAX_ID_LEN} ASCII letters, digits or '_'")]
    InvalidId(String),
    #[error("the id in the path ({path_id:?}) does not match the id in the body ({body_id:?})")]
    IdMismatch { path_id: String, body_id: String },
}

impl RouteError {
    /// Every path error is the client's: `400` with a `fault_message`.
    pub fn to_response(&self) -> ApiResponse {
        ApiResponse::bad_request(self)
    }
}

/// A path cut in at most two parts: `/` is `("", None)`, `/boot-source` is
/// `("boot-source", None)`, `/drives/rootfs` is `("drives", Some("rootfs"))`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Route<'a> {
    pub resource: &'a str,
    pub sub: Option<&'a str>,
    path: &'a str,
}

impl<'a> Route<'a> {
    /// The second part as a device id (`/drives/{id}`), checked.
    pub fn id(&self) -> Result<&'a str, RouteError> {
        let id = self
            .sub
            .ok_or_else(|| RouteError::MissingId(self.path.to_string()))?;
        check_id(id)?;
        Ok(id)
    }
}

/// Splits `path`. One trailing `/` is tolerated (`/drives/rootfs/`); a
/// query string, an empty part (`/drives//x`) or a third part is refused.
pub fn parse_path(path: &str) -> Result<Route<'_>, RouteError> {
    if path.contains('?') || path.contains('#') {
        return Err(RouteError::QueryString(path.to_string()));
    }
    let bad = || RouteError::BadPath(path.to_string());
    let rest = path.strip_prefix('/').ok_or_else(bad)?;
    let rest = rest
        .strip_suffix('/')
        .filter(|r| !r.is_empty())
        .unwrap_or(rest);
    if rest.is_empty() {
        return Ok(Route {
            resource: "",
            sub: None,
            path,
        });
    }
    let mut parts = rest.split('/');
    let resource = parts.next().ok_or_else(bad)?;
    let sub = parts.next();
    if parts.next().is_some() || resource.is_empty() || sub == Some("") {
        return Err(bad());
    }
    Ok(Route {
        resource,
        sub,
        path,
    })
}

/// Firecracker's rule for ids, with its length limit: 1 to 64 ASCII
/// letters, digits or `_`.
pub fn check_id(id: &str) -> Result<(), RouteError> {
    let valid = !id.is_empty()
        && id.len() <= MAX_ID_LEN
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    if valid {
        Ok(())
    } else {
        Err(RouteError::InvalidId(id.to_string()))
    }
}

/// A PUT or PATCH on `/drives/{id}` must name the same id in its body.
pub fn check_body_id(path_id: &str, body_id: &str) -> Result<(), RouteError> {
    if path_id == body_id {
        Ok(())
    } else {
        Err(RouteError::IdMismatch {
            path_id: path_id.to_string(),
            body_id: body_id.to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(path: &str) -> (&str, Option<&str>) {
        let r = parse_path(path).unwrap();
        (r.resource, r.sub)
    }

    #[test]
    fn splits_firecracker_paths() {
        assert_eq!(parts("/"), ("", None));
        assert_eq!(parts("/boot-source"), ("boot-source", None));
        assert_eq!(parts("/drives/rootfs"), ("drives", Some("rootfs")));
        assert_eq!(parts("/drives/rootfs/"), ("drives", Some("rootfs")));
        assert_eq!(parts("/vm/config"), ("vm", Some("config")));
        assert_eq!(
            parts("/network-interfaces/eth0"),
            ("network-interfaces", Some("eth0"))
        );
    }

    #[test]
    fn refuses_queries_and_odd_shapes() {
        assert!(matches!(
            parse_path("/machine-config?x=1"),
            Err(RouteError::QueryString(_))
        ));
        for path in [
            "",
            "drives",
            "//",
            "/drives//x",
            "//drives",
            "/a/b/c",
            "/drives/x//",
        ] {
            assert!(
                matches!(parse_path(path), Err(RouteError::BadPath(_))),
                "{path:?}"
            );
        }
    }

    #[test]
    fn ids_follow_firecrackers_rule() {
        assert_eq!(parse_path("/drives/root_fs1").unwrap().id(), Ok("root_fs1"));
        assert!(matches!(
            parse_path("/drives").unwrap().id(),
            Err(RouteError::MissingId(_))
        ));
        for id in ["a-b", "a.b", "%41", "é", "a b"] {
            assert_eq!(check_id(id), Err(RouteError::InvalidId(id.into())), "{id}");
        }
        assert!(check_id(&"a".repeat(MAX_ID_LEN)).is_ok());
        assert!(check_id(&"a".repeat(MAX_ID_LEN + 1)).is_err());
        assert!(check_id("").is_err());
    }

    #[test]
    fn body_id_must_match_path_id() {
        assert!(check_body_id("rootfs", "rootfs").is_ok());
        let err = check_body_id("rootfs", "scratch").unwrap_err();
        assert_eq!(err.to_response().status.code(), 400);
        assert!(err.to_string().contains("scratch"));
    }
}
