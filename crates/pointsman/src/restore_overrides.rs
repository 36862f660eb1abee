//! `--net` and `--vsock` beside `--restore`: not new devices (a snapshot
//! brings its own) but new host ends for the ones it has, as
//! `network_overrides` and `vsock_override` of `PUT /snapshot/load`.

use vmm::resources::{NetworkOverride, SnapshotOverrides, VsockOverride};

/// The overrides `--net id=NAME,tap=TAP` (repeatable) and
/// `--vsock socket=PATH` give, checked.
pub fn parse(net: &[String], vsock: Option<&str>) -> Result<SnapshotOverrides, String> {
    let overrides = SnapshotOverrides {
        network: net
            .iter()
            .map(|spec| net_override(spec))
            .collect::<Result<_, _>>()?,
        vsock: vsock.map(vsock_override).transpose()?,
    };
    overrides.validate().map_err(|e| e.to_string())?;
    Ok(overrides)
}

fn net_override(spec: &str) -> Result<NetworkOverride, String> {
    let (mut id, mut tap) = (None, None);
    for (key, value) in pairs(spec, "--net")? {
        match key {
            "id" => id = Some(value),
            "tap" => tap = Some(value),
            other => {
                return Err(format!(
                    "--net {spec}: with --restore, --net gives a NIC of the snapshot a new TAP (id=NAME,tap=TAP), not {other}="
                ))
            }
        }
    }
    match (id, tap) {
        (Some(id), Some(tap)) => Ok(NetworkOverride {
            iface_id: id.to_owned(),
            host_dev_name: tap.to_owned(),
        }),
        _ => Err(format!(
            "--net {spec}: with --restore, --net needs id=NAME (the NIC's iface_id) and tap=TAP"
        )),
    }
}

fn vsock_override(spec: &str) -> Result<VsockOverride, String> {
    match pairs(spec, "--vsock")?.as_slice() {
        [("socket", path)] => Ok(VsockOverride {
            uds_path: (*path).to_owned(),
        }),
        _ => Err(format!(
            "--vsock {spec}: with --restore, --vsock gives the snapshot's vsock device a new socket=PATH, and nothing else"
        )),
    }
}

/// `key=value` pairs separated by commas.
fn pairs<'a>(spec: &'a str, option: &str) -> Result<Vec<(&'a str, &'a str)>, String> {
    spec.split(',')
        .map(|pair| {
            pair.split_once('=')
                .ok_or_else(|| format!("{option} {spec}: {pair} is not key=value"))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overrides_are_parsed() {
        let o = parse(
            &["id=eth0,tap=tap7".into(), "tap=tap8,id=eth1".into()],
            Some("socket=/tmp/v.sock"),
        )
        .unwrap();
        assert_eq!(o.network.len(), 2);
        assert_eq!(o.network[1].iface_id, "eth1");
        assert_eq!(o.network[1].host_dev_name, "tap8");
        assert_eq!(o.vsock.unwrap().uds_path, "/tmp/v.sock");
        assert_eq!(parse(&[], None).unwrap(), SnapshotOverrides::default());
    }

    #[test]
    fn bad_overrides_are_refused_by_name() {
        let net = |spec: &str| parse(&[spec.into()], None).unwrap_err();
        assert!(net("tap=tap0").contains("id=NAME"));
        assert!(net("id=eth0,tap=tap0,mac=02:00:00:00:00:01").contains("mac="));
        assert!(net("id=eth0,tap0").contains("not key=value"));
        assert!(net("id=e/0,tap=tap0").contains("iface_id"));
        assert!(net("id=eth0,tap=a/b").contains("a/b"));
        let twice = parse(&["id=a,tap=t1".into(), "id=a,tap=t2".into()], None).unwrap_err();
        assert!(twice.contains("twice"), "{twice}");
        let vsock = |spec: &str| parse(&[], Some(spec)).unwrap_err();
        assert!(vsock("cid=3,socket=/x").contains("socket=PATH"));
        assert!(vsock("socket=").contains("uds_path"));
    }
}
