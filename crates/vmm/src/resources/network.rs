//! `network-interfaces` (`PUT|PATCH /network-interfaces/{iface_id}`):
//! virtio-net NICs over host TAPs.

use serde::{Deserialize, Serialize};
use virtio::net::config::{parse_mac, MAX_TAP_NAME};
use virtio::net::NetConfig;
use virtio::rate_limiter::Limits;

use super::{validate_id, RateLimiter, ResourceError};

/// One NIC.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetworkInterface {
    pub iface_id: String,
    /// The host TAP (Pointsman creates it if it does not exist).
    pub host_dev_name: String,
    /// `aa:bb:cc:dd:ee:ff`; a random one when left out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub guest_mac: Option<String>,
    /// Refused: Pointsman does not offer VIRTIO_NET_F_MTU.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtu: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rx_rate_limiter: Option<RateLimiter>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tx_rate_limiter: Option<RateLimiter>,
}

pub(super) fn validate_tap_name(name: &str) -> Result<(), ResourceError> {
    let valid = !name.is_empty()
        && name.len() <= MAX_TAP_NAME
        && name != "."
        && name != ".."
        && !name
            .chars()
            .any(|c| c == '/' || c == ':' || c.is_whitespace() || c.is_control());
    if valid {
        Ok(())
    } else {
        Err(ResourceError::TapName(name.to_owned()))
    }
}

fn mac(text: &str) -> Result<[u8; 6], ResourceError> {
    parse_mac(text).map_err(|e| ResourceError::Mac {
        value: text.to_owned(),
        // The virtio error names the command-line option; keep its reason.
        reason: e
            .to_string()
            .split_once(": ")
            .map_or_else(|| e.to_string(), |(_, why)| why.to_owned()),
    })
}

/// Formats a MAC address as Firecracker shows it.
fn format_mac(mac: &[u8; 6]) -> String {
    mac.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

impl NetworkInterface {
    pub fn validate(&self) -> Result<(), ResourceError> {
        validate_id("iface_id", &self.iface_id)?;
        validate_tap_name(&self.host_dev_name)?;
        if self.mtu.is_some() {
            return Err(ResourceError::NetMtu(self.iface_id.clone()));
        }
        if let Some(text) = &self.guest_mac {
            mac(text)?;
        }
        if let Some(limiter) = &self.rx_rate_limiter {
            limiter.validate("rx_rate_limiter")?;
        }
        if let Some(limiter) = &self.tx_rate_limiter {
            limiter.validate("tx_rate_limiter")?;
        }
        Ok(())
    }

    pub fn to_net_config(&self) -> Result<NetConfig, ResourceError> {
        self.validate()?;
        let rx = self.rx_rate_limiter.clone().unwrap_or_default();
        let tx = self.tx_rate_limiter.clone().unwrap_or_default();
        Ok(NetConfig {
            tap: self.host_dev_name.clone(),
            mac: self.guest_mac.as_deref().map(mac).transpose()?,
            id: Some(self.iface_id.clone()),
            rx: Limits {
                bandwidth: rx.bandwidth_config(),
                ops: rx.ops_config(),
            },
            tx: Limits {
                bandwidth: tx.bandwidth_config(),
                ops: tx.ops_config(),
            },
            moderation: true,
        })
    }

    /// The interface that shows Pointsman's NIC number `index`: its own
    /// id, or `ethN`. A NIC given no MAC shows none: the device picks it.
    pub fn from_net_config(index: usize, net: &NetConfig) -> NetworkInterface {
        NetworkInterface {
            iface_id: net.id.clone().unwrap_or_else(|| format!("eth{index}")),
            host_dev_name: net.tap.clone(),
            guest_mac: net.mac.as_ref().map(format_mac),
            mtu: None,
            rx_rate_limiter: RateLimiter::from_configs(
                net.rx.bandwidth.as_ref(),
                net.rx.ops.as_ref(),
            ),
            tx_rate_limiter: RateLimiter::from_configs(
                net.tx.bandwidth.as_ref(),
                net.tx.ops.as_ref(),
            ),
        }
    }
}

/// `PATCH /network-interfaces/{iface_id}`: new limits after boot.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PartialNetworkInterface {
    pub iface_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rx_rate_limiter: Option<RateLimiter>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tx_rate_limiter: Option<RateLimiter>,
}

impl PartialNetworkInterface {
    /// `iface` with these limits in place, validated.
    pub fn apply(&self, iface: &NetworkInterface) -> Result<NetworkInterface, ResourceError> {
        validate_id("iface_id", &self.iface_id)?;
        let mut updated = iface.clone();
        if let Some(limiter) = &self.rx_rate_limiter {
            updated.rx_rate_limiter = Some(limiter.merged_onto(iface.rx_rate_limiter.as_ref()));
        }
        if let Some(limiter) = &self.tx_rate_limiter {
            updated.tx_rate_limiter = Some(limiter.merged_onto(iface.tx_rate_limiter.as_ref()));
        }
        updated.validate()?;
        Ok(updated)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn iface(text: &str) -> NetworkInterface {
        serde_json::from_str(text).unwrap()
    }

    #[test]
    fn round_trip_through_net_config() {
        let i = iface(
            r#"{"iface_id": "eth0", "host_dev_name": "tap0", "guest_mac": "06:00:AC:10:00:02",
                "rx_rate_limiter": {"bandwidth": {"size": 100000, "refill_time": 100}},
                "tx_rate_limiter": {"ops": {"size": 50, "refill_time": 100}}}"#,
        );
        let net = i.to_net_config().unwrap();
        assert_eq!(net.tap, "tap0");
        assert_eq!(net.mac, Some([6, 0, 0xac, 0x10, 0, 2]));
        assert_eq!(net.rx.bandwidth.as_ref().map(|b| b.size), Some(100_000));
        assert_eq!(
            (net.rx.ops.as_ref(), net.tx.bandwidth.as_ref()),
            (None, None)
        );
        assert_eq!(net.tx.ops.as_ref().map(|o| o.size), Some(50));
        let back = NetworkInterface::from_net_config(0, &net);
        assert_eq!(back.guest_mac.as_deref(), Some("06:00:ac:10:00:02"));
        assert_eq!(back.to_net_config().unwrap(), net);
        let plain = iface(r#"{"iface_id": "eth0", "host_dev_name": "tap0"}"#);
        assert_eq!(
            serde_json::to_string(&plain).unwrap(),
            r#"{"iface_id":"eth0","host_dev_name":"tap0"}"#
        );
        assert_eq!(plain.to_net_config().unwrap().mac, None);
    }

    #[test]
    fn refusals() {
        for bad in [
            r#"{"iface_id": "eth0"}"#,
            r#"{"host_dev_name": "tap0"}"#,
            r#"{"iface_id": "eth0", "host_dev_name": "tap0", "allow_mmds_requests": true}"#,
        ] {
            assert!(
                serde_json::from_str::<NetworkInterface>(bad).is_err(),
                "{bad}"
            );
        }
        let base = || iface(r#"{"iface_id": "eth0", "host_dev_name": "tap0"}"#);
        for mac in [
            "06:00:00:00:00",
            "zz:00:00:00:00:01",
            "01:00:00:00:00:01",
            "00:00:00:00:00:00",
        ] {
            let i = NetworkInterface {
                guest_mac: Some(mac.into()),
                ..base()
            };
            let e = i.validate().unwrap_err();
            assert!(e.to_string().starts_with("invalid guest_mac"), "{e}");
            assert!(!e.to_string().contains("--net"), "{e}");
        }
        let i = NetworkInterface {
            host_dev_name: "a/b".into(),
            ..base()
        };
        assert_eq!(i.validate(), Err(ResourceError::TapName("a/b".into())));
        let i = NetworkInterface {
            iface_id: "eth 0".into(),
            ..base()
        };
        assert!(matches!(i.validate(), Err(ResourceError::InvalidId { .. })));
        let i = NetworkInterface {
            mtu: Some(9000),
            ..base()
        };
        assert_eq!(i.validate(), Err(ResourceError::NetMtu("eth0".into())));
        let slow: RateLimiter =
            serde_json::from_str(r#"{"ops": {"size": 10, "refill_time": 99999999999999}}"#)
                .unwrap();
        let i = NetworkInterface {
            tx_rate_limiter: Some(slow),
            ..base()
        };
        let e = i.validate().unwrap_err().to_string();
        assert!(
            e.starts_with("invalid tx_rate_limiter.ops.refill_time"),
            "{e}"
        );
    }

    #[test]
    fn a_partial_interface_changes_the_limits() {
        let i = iface(r#"{"iface_id": "eth0", "host_dev_name": "tap0"}"#);
        let both = r#"{"iface_id": "eth0",
            "rx_rate_limiter": {"ops": {"size": 10, "refill_time": 100}},
            "tx_rate_limiter": {"ops": {"size": 10, "refill_time": 100}}}"#;
        let p: PartialNetworkInterface = serde_json::from_str(both).unwrap();
        let updated = p.apply(&i).unwrap();
        assert_eq!(
            updated.to_net_config().unwrap().rx.ops.map(|o| o.size),
            Some(10)
        );
        let p: PartialNetworkInterface = serde_json::from_str(
            r#"{"iface_id": "eth0", "rx_rate_limiter": {"ops": {"size": 5, "refill_time": 100}}}"#,
        )
        .unwrap();
        let net = p.apply(&updated).unwrap().to_net_config().unwrap();
        assert_eq!(net.rx.ops.map(|o| o.size), Some(5), "receive changed");
        assert_eq!(net.tx.ops.map(|o| o.size), Some(10), "transmit kept");
        assert!(serde_json::from_str::<PartialNetworkInterface>(
            r#"{"iface_id": "eth0", "host_dev_name": "tap1"}"#
        )
        .is_err());
    }
}
