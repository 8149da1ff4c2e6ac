//! The table of limits (support/limits.rs) through `wasmhttp serve`: every
//! case against the WAT fixture, the C CGI program as a module and as a
//! component, and the componentize-py and componentize-js examples.

mod support;

use std::sync::Mutex;

use support::limits::{self, Guest, Server};
use support::served::{Served, fixture, serve, temp_dir};

impl Server for Served {
    fn addr(&self) -> std::net::SocketAddr {
        self.addr
    }

    fn output(&self) -> String {
        self.log()
    }

    fn stop(self: Box<Self>) {
        let log = self.log();
        let status = (*self).terminate();
        assert!(
            status.success(),
            "wasmhttp serve exited with {status}\n{log}"
        );
    }
}

/// One guest at a time: the cases time requests against the timeout, and
/// two servers instantiating a dozen Python interpreters at once on two
/// cores would be timing each other.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn table_for(name: &str) {
    let _turn = ONE_AT_A_TIME
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let dir = temp_dir(&format!("limits-{name}"));
    let guests = limits::guests(
        fixture(&dir, "slow"),
        fixture(&dir, "cgi"),
        fixture(&dir, "cgi-component"),
    );
    let guest: Guest = guests.into_iter().find(|guest| guest.name == name).unwrap();
    let settings: Vec<(&str, &str)> = limits::SETTINGS
        .iter()
        .chain(guest.settings)
        .copied()
        .collect();
    let served = serve(
        &format!("limits-{name}-serve"),
        &guest.component,
        &[],
        &settings,
    );
    limits::run_table(&guest, Box::new(served));
}

#[test]
fn limits_hold_for_the_wat_fixture() {
    table_for("wat");
}

#[test]
fn limits_hold_for_the_cgi_program_as_a_module() {
    table_for("cgi-module");
}

#[test]
fn limits_hold_for_the_cgi_program_as_a_component() {
    table_for("cgi-component");
}

#[test]
fn limits_hold_for_the_python_example() {
    table_for("py");
}

#[test]
fn limits_hold_for_the_python_wasi_http_0_3_example() {
    table_for("py-0.3");
}

#[test]
fn limits_hold_for_the_python_wasi_http_0_3_example_sharing_instances() {
    table_for("py-0.3-shared");
}

#[test]
fn limits_hold_for_the_javascript_example() {
    table_for("js");
}
