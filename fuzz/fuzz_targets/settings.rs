//! WASMHTTP_* settings, as a container's env hands them over: parsing never
//! panics, and what it accepts stays within the documented ranges.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wasmhttp::settings::{Environment, Limits, PREFIX};

#[derive(Debug, arbitrary::Arbitrary)]
struct Input {
    /// `NAME=value` entries; names are often steered to known settings.
    entries: Vec<(u8, String)>,
    memory_limit: Option<u64>,
    cpus: Option<f64>,
}

fuzz_target!(|input: Input| {
    let entries: Vec<String> = input
        .entries
        .iter()
        .map(|(pick, entry)| match wasmhttp::settings::table::TABLE.get(*pick as usize) {
            Some(setting) => format!("{}={entry}", setting.name),
            None => entry.clone(),
        })
        .collect();
    let limits = Limits {
        memory: input.memory_limit,
        cpus: input.cpus,
    };
    match Environment::from_entries(&entries, &limits) {
        Ok(env) => {
            let settings = &env.settings;
            assert!((1..=1000).contains(&settings.max_concurrency));
            assert!((1..=100_000).contains(&settings.instance_reuse));
            assert!(settings.max_instance_memory <= 4 << 30);
            assert!(!settings.request_timeout.is_zero());
            assert!(!settings.header_timeout.is_zero());
            assert!(!settings.idle_timeout.is_zero());
            // the guest never sees a setting
            assert!(env.guest_env.iter().all(|(name, _)| !name.starts_with(PREFIX)));
        }
        Err(err) => {
            // the error names a variable that was given
            let text = err.to_string();
            assert!(text.contains(PREFIX), "{text}");
        }
    }
});
