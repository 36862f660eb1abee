//! `logger` (`PUT /logger`, `--log-path`, `--level`): where Pointsman's
//! own log goes, and how much of it.

use serde::{Deserialize, Serialize};

use super::{validate_path, ResourceError};

/// How much to log (`Info` when a logger leaves it out, as in Firecracker).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LogLevel {
    Off,
    Error,
    Warning,
    #[default]
    Info,
    Debug,
    Trace,
}

impl LogLevel {
    /// Firecracker's names, in any case (`Warn` too).
    pub fn parse(text: &str) -> Result<LogLevel, ResourceError> {
        Ok(match text.to_ascii_lowercase().as_str() {
            "off" => LogLevel::Off,
            "error" => LogLevel::Error,
            "warn" | "warning" => LogLevel::Warning,
            "info" => LogLevel::Info,
            "debug" => LogLevel::Debug,
            "trace" => LogLevel::Trace,
            _ => return Err(ResourceError::LogLevel(text.to_owned())),
        })
    }

    /// The level's name in a `tracing` filter directive.
    pub fn directive(self) -> &'static str {
        match self {
            LogLevel::Off => "off",
            LogLevel::Error => "error",
            LogLevel::Warning => "warn",
            LogLevel::Info => "info",
            LogLevel::Debug => "debug",
            LogLevel::Trace => "trace",
        }
    }
}

/// The logger.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Logger {
    /// A file or FIFO, opened for appending; stderr when left out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_path: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub level: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub show_level: Option<bool>,
    /// File and line of each message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub show_log_origin: Option<bool>,
    /// Only messages from this module (a Rust path such as `virtio::net`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub module: Option<String>,
}

impl Logger {
    pub fn validate(&self) -> Result<(), ResourceError> {
        if let Some(path) = &self.log_path {
            validate_path("log_path", path)?;
        }
        self.log_level()?;
        Ok(())
    }

    pub fn log_level(&self) -> Result<LogLevel, ResourceError> {
        self.level
            .as_deref()
            .map_or(Ok(LogLevel::default()), LogLevel::parse)
    }

    /// The logger after `update` (a later `PUT /logger`, or a config
    /// file's section after the command line's flags), as Firecracker
    /// applies one: a field it gives replaces this one's, a field it
    /// leaves out stays, except `level`, which goes back to `Info`.
    pub fn updated_by(&self, update: &Logger) -> Logger {
        Logger {
            log_path: update.log_path.clone().or_else(|| self.log_path.clone()),
            level: update.level.clone(),
            show_level: update.show_level.or(self.show_level),
            show_log_origin: update.show_log_origin.or(self.show_log_origin),
            module: update.module.clone().or_else(|| self.module.clone()),
        }
    }

    /// The `tracing` filter: the level for everything, or for `module`
    /// alone with everything else off.
    pub fn filter_directive(&self) -> Result<String, ResourceError> {
        let level = self.log_level()?.directive();
        Ok(match &self.module {
            Some(module) => format!("off,{module}={level}"),
            None => level.to_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_and_filters() {
        let l: Logger = serde_json::from_str(
            r#"{"log_path": "/tmp/log", "level": "Info", "show_level": true,
                "show_log_origin": false, "module": "virtio::net"}"#,
        )
        .unwrap();
        l.validate().unwrap();
        assert_eq!(l.filter_directive().unwrap(), "off,virtio::net=info");
        let plain: Logger = serde_json::from_str("{}").unwrap();
        assert_eq!(
            plain.filter_directive().unwrap(),
            "info",
            "Firecracker's default"
        );
        for (text, level) in [
            ("Off", LogLevel::Off),
            ("error", LogLevel::Error),
            ("Warning", LogLevel::Warning),
            ("WARN", LogLevel::Warning),
            ("Debug", LogLevel::Debug),
            ("trace", LogLevel::Trace),
        ] {
            assert_eq!(LogLevel::parse(text).unwrap(), level);
        }
    }

    #[test]
    fn an_update_keeps_what_it_leaves_out_but_the_level() {
        let first = Logger {
            log_path: Some("/tmp/a.log".into()),
            level: Some("Debug".into()),
            show_level: Some(true),
            show_log_origin: Some(true),
            module: Some("virtio".into()),
        };
        let update = Logger {
            show_log_origin: Some(false),
            ..Logger::default()
        };
        let now = first.updated_by(&update);
        assert_eq!(now.log_path.as_deref(), Some("/tmp/a.log"));
        assert_eq!(now.level, None, "back to Firecracker's default");
        assert_eq!(now.log_level().unwrap(), LogLevel::Info);
        assert_eq!(
            (now.show_level, now.show_log_origin),
            (Some(true), Some(false))
        );
        assert_eq!(now.module.as_deref(), Some("virtio"));
        let moved = now.updated_by(&Logger {
            log_path: Some("/tmp/b.log".into()),
            level: Some("Error".into()),
            module: Some("vmm".into()),
            ..Logger::default()
        });
        assert_eq!(moved.log_path.as_deref(), Some("/tmp/b.log"));
        assert_eq!(moved.filter_directive().unwrap(), "off,vmm=error");
    }

    #[test]
    fn refusals() {
        let l = Logger {
            level: Some("Loud".into()),
            ..Logger::default()
        };
        assert_eq!(l.validate(), Err(ResourceError::LogLevel("Loud".into())));
        let l = Logger {
            log_path: Some(String::new()),
            ..Logger::default()
        };
        assert!(l.validate().is_err());
        assert!(serde_json::from_str::<Logger>(r#"{"path": "/x"}"#).is_err());
        assert!(serde_json::from_str::<Logger>(r#"{"show_level": "yes"}"#).is_err());
    }
}
