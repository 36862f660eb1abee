//! `pointsman vm set NAME ...`: new limits for a guest, which the daemon
//! writes to its cgroup and keeps in its configuration.

use clap::Args;
use manager::client::Client;
use manager::limits_update::{CpuMax, LimitsChange};
use manager::ManagerError;

#[derive(Args, Debug)]
pub struct SetArgs {
    pub name: String,
    /// Relative share of contended CPU time, 1-10000.
    #[arg(long, value_name = "W")]
    pub cpu_weight: Option<u32>,
    /// Hard CPU cap in percent of one host CPU, or `max` for none.
    #[arg(long, value_name = "PERCENT|max")]
    pub cpu_max: Option<String>,
    /// Limit on the VMM's memory.
    #[arg(long, value_name = "SIZE")]
    pub memory_max: Option<String>,
    /// Relative share of contended disk time, 1-10000.
    #[arg(long, value_name = "W")]
    pub io_weight: Option<u32>,
}

impl SetArgs {
    fn change(&self) -> LimitsChange {
        LimitsChange {
            cpu_weight: self.cpu_weight,
            // A number is a percent; any other word goes to the daemon,
            // which takes `max` and names anything else.
            cpu_max: self.cpu_max.as_deref().map(|text| match text.parse() {
                Ok(percent) => CpuMax::Percent(percent),
                Err(_) => CpuMax::Word(text.to_owned()),
            }),
            memory_max: self.memory_max.clone(),
            io_weight: self.io_weight,
        }
    }
}

/// Sends the change and prints the limits the guest has now.
pub fn set(client: &Client, args: &SetArgs) -> Result<(), ManagerError> {
    let shown = client.set_limits(&args.name, &args.change())?;
    let text = |key: &str| match &shown[key] {
        serde_json::Value::Null => "-".to_owned(),
        value => value.to_string(),
    };
    println!(
        "{}: cpu_weight {}, cpu_max {}, memory_max_mib {}, io_weight {}",
        args.name,
        text("cpu_weight"),
        text("cpu_max"),
        text("memory_max_mib"),
        text("io_weight")
    );
    Ok(())
}
