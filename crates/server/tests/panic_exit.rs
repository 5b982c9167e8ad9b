//! A panic outside the engine's containment must not leave a process running without the task
//! that panicked: the server's panic hook ends the process at once with status 70, for its
//! supervisor (the systemd unit in packaging/) to start it again.

use std::process::Command;

const CHILD: &str = "ETHERHUB_PANIC_EXIT_CHILD";

#[test]
fn a_panic_outside_the_engine_ends_the_process_with_status_70() {
    if std::env::var_os(CHILD).is_some() {
        // the child: the server's hook, then a panic on a worker thread, as a task would panic
        etherhub_server::runtime::install_panic_hook();
        let t = std::thread::spawn(|| panic!("a task failed"));
        let _ = t.join();
        // the hook has ended the process before this line
        std::thread::sleep(std::time::Duration::from_secs(5));
        std::process::exit(0);
    }
    let me = std::env::current_exe().unwrap();
    let out = Command::new(me)
        .args([
            "--exact",
            "a_panic_outside_the_engine_ends_the_process_with_status_70",
            "--nocapture",
        ])
        .env(CHILD, "1")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(70), "{text}");
    assert!(text.contains("a task failed"), "{text}");
    assert!(
        text.contains("exiting so that the supervisor restarts"),
        "{text}"
    );
}
