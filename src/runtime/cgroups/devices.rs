//! Device access rules: the config's linux.resources.devices after a default
//! deny-all, followed by the devices every container needs (runc's list), as
//! one ordered list that v1 (devices.allow/deny) and v2 (eBPF) both enforce.

use oci_spec::runtime::{LinuxDeviceCgroup, LinuxDeviceType};

/// One rule; `None` major/minor means any ("*").
#[derive(Clone, Debug, PartialEq)]
pub struct Rule {
    pub allow: bool,
    /// 'a' (all), 'c' or 'b'.
    pub typ: char,
    pub major: Option<i64>,
    pub minor: Option<i64>,
    /// Some of "rwm".
    pub access: String,
}

impl Rule {
    fn new(allow: bool, typ: char, major: Option<i64>, minor: Option<i64>, access: &str) -> Rule {
        Rule {
            allow,
            typ,
            major,
            minor,
            access: access.to_string(),
        }
    }

    /// The v1 devices.allow/devices.deny line: "c 1:3 rwm".
    pub fn v1_line(&self) -> String {
        let n = |v: Option<i64>| v.map_or("*".to_string(), |v| v.to_string());
        format!(
            "{} {}:{} {}",
            self.typ,
            n(self.major),
            n(self.minor),
            self.access
        )
    }

    fn from_oci(d: &LinuxDeviceCgroup) -> Option<Rule> {
        let typ = match d.typ().unwrap_or_default() {
            LinuxDeviceType::A => 'a',
            LinuxDeviceType::B => 'b',
            LinuxDeviceType::C | LinuxDeviceType::U => 'c',
            LinuxDeviceType::P => return None, // fifos are not device-controlled
        };
        let access: String = d
            .access()
            .as_deref()
            .unwrap_or("rwm")
            .chars()
            .filter(|c| "rwm".contains(*c))
            .collect();
        let access = if access.is_empty() {
            "rwm".to_string()
        } else {
            access
        };
        let wild = |v: Option<i64>| v.filter(|v| *v >= 0);
        Some(Rule::new(
            d.allow(),
            typ,
            wild(d.major()),
            wild(d.minor()),
            &access,
        ))
    }
}

/// Devices every container may use, appended after the config's rules
/// (runc's AllowedDevices): mknod of anything, null, zero, full, random,
/// urandom, tty, ptmx, the pts devices and tun.
fn defaults() -> Vec<Rule> {
    let c = |maj: i64, min: Option<i64>| Rule::new(true, 'c', Some(maj), min, "rwm");
    vec![
        Rule::new(true, 'c', None, None, "m"),
        Rule::new(true, 'b', None, None, "m"),
        c(1, Some(3)),
        c(1, Some(8)),
        c(1, Some(7)),
        c(5, Some(0)),
        c(1, Some(5)),
        c(1, Some(9)),
        c(136, None),
        c(5, Some(2)),
        c(10, Some(200)),
    ]
}

/// Deny all, then `config`'s rules in order, then the defaults.
pub fn effective_rules(config: &[LinuxDeviceCgroup]) -> Vec<Rule> {
    let mut out = vec![Rule::new(false, 'a', None, None, "rwm")];
    out.extend(config.iter().filter_map(Rule::from_oci));
    out.extend(defaults());
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use oci_spec::runtime::LinuxDeviceCgroupBuilder;

    #[test]
    fn deny_all_then_config_then_defaults() {
        let cfg = vec![
            LinuxDeviceCgroupBuilder::default()
                .allow(true)
                .typ(LinuxDeviceType::C)
                .major(4)
                .minor(64)
                .access("rw")
                .build()
                .unwrap(),
            LinuxDeviceCgroupBuilder::default()
                .allow(false)
                .typ(LinuxDeviceType::B)
                .major(-1)
                .build()
                .unwrap(),
        ];
        let rules = effective_rules(&cfg);
        let lines: Vec<String> = rules.iter().map(Rule::v1_line).collect();
        assert_eq!(lines[0], "a *:* rwm");
        assert!(!rules[0].allow);
        assert_eq!(lines[1], "c 4:64 rw");
        assert_eq!(lines[2], "b *:* rwm");
        assert!(!rules[2].allow);
        assert!(lines.contains(&"c 1:3 rwm".to_string()));
        assert!(lines.contains(&"c 136:* rwm".to_string()));
        assert_eq!(lines.len(), 3 + defaults().len());
    }
}
