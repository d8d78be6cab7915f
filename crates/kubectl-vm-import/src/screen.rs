//! How `vnc` and `console` reach a VM's screen or serial console: the console's page
//! for the VM when the console's URL is known (`--console-url`, or
//! `VM_IMPORT_CONSOLE_URL`), else KubeVirt's own `virtctl` when it is on the PATH,
//! else a clear error. The decision is [`route`]; [`hand_off`] runs virtctl.

use std::{
    path::{Path, PathBuf},
    process::Command,
};

/// Which stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stream {
    /// The VNC screen.
    Vnc,
    /// The serial console.
    Serial,
}

/// Where the user is sent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Route {
    /// Print this URL: the console's page for the VM.
    Url(String),
    /// Run virtctl with these arguments.
    Virtctl(PathBuf, Vec<String>),
}

/// Why there is no way to the screen.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum ScreenError {
    /// Neither a console URL nor virtctl.
    #[error(
        "no way to open the {0} of {1}: pass --console-url (or set VM_IMPORT_CONSOLE_URL) to the Imported VMs console, or install virtctl"
    )]
    NoWay(&'static str, String),
    /// The console URL is not http(s).
    #[error("--console-url {0:?} is not an http:// or https:// URL")]
    BadUrl(String),
    /// virtctl could not run, or failed.
    #[error("virtctl: {0}")]
    Virtctl(String),
}

/// The kubeconfig selection to pass on to virtctl.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Selection {
    /// `--context`.
    pub context: Option<String>,
    /// `--kubeconfig`.
    pub kubeconfig: Option<PathBuf>,
}

/// The route to `stream` of VM `vm` in `namespace`.
pub fn route(
    stream: Stream,
    namespace: &str,
    vm: &str,
    console_url: Option<&str>,
    virtctl: Option<&Path>,
    selection: &Selection,
) -> Result<Route, ScreenError> {
    let (segment, virtctl_command, what) = match stream {
        Stream::Vnc => ("vnc", "vnc", "screen"),
        Stream::Serial => ("serial", "console", "serial console"),
    };
    if let Some(url) = console_url.map(str::trim).filter(|u| !u.is_empty()) {
        if !(url.starts_with("https://") || url.starts_with("http://")) {
            return Err(ScreenError::BadUrl(url.to_owned()));
        }
        let base = url.trim_end_matches('/');
        return Ok(Route::Url(format!("{base}/ns/{namespace}/vms/{vm}/{segment}\n")));
    }
    let Some(virtctl) = virtctl else {
        return Err(ScreenError::NoWay(what, vm.to_owned()));
    };
    let mut args = vec![
        virtctl_command.to_owned(),
        vm.to_owned(),
        "--namespace".into(),
        namespace.into(),
    ];
    if let Some(context) = &selection.context {
        args.extend(["--context".into(), context.clone()]);
    }
    if let Some(kubeconfig) = &selection.kubeconfig {
        args.extend(["--kubeconfig".into(), kubeconfig.display().to_string()]);
    }
    Ok(Route::Virtctl(virtctl.to_owned(), args))
}

/// `virtctl` on the PATH, if any.
pub fn find_virtctl() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join("virtctl"))
        .find(|candidate| candidate.is_file())
}

/// Runs virtctl on this terminal until it ends.
pub fn hand_off(program: &Path, args: &[String]) -> Result<String, ScreenError> {
    let status = Command::new(program)
        .args(args)
        .status()
        .map_err(|e| ScreenError::Virtctl(format!("{}: {e}", program.display())))?;
    if status.success() {
        Ok(String::new())
    } else {
        Err(ScreenError::Virtctl(format!("exited with {status}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_console_url_comes_first_then_virtctl_then_a_clear_error() {
        let none = Selection::default();
        assert_eq!(
            route(
                Stream::Vnc,
                "tenant-a",
                "web",
                Some("https://vms.example/"),
                None,
                &none
            ),
            Ok(Route::Url("https://vms.example/ns/tenant-a/vms/web/vnc\n".into()))
        );
        let virtctl = Path::new("/usr/local/bin/virtctl");
        assert_eq!(
            route(
                Stream::Serial,
                "tenant-a",
                "web",
                Some("https://vms.example"),
                Some(virtctl),
                &none
            ),
            Ok(Route::Url("https://vms.example/ns/tenant-a/vms/web/serial\n".into())),
            "the console when both are there"
        );
        let selection = Selection {
            context: Some("prod".into()),
            kubeconfig: Some("/k/config".into()),
        };
        assert_eq!(
            route(Stream::Serial, "tenant-a", "web", None, Some(virtctl), &selection),
            Ok(Route::Virtctl(
                virtctl.into(),
                [
                    "console",
                    "web",
                    "--namespace",
                    "tenant-a",
                    "--context",
                    "prod",
                    "--kubeconfig",
                    "/k/config"
                ]
                .map(String::from)
                .to_vec()
            ))
        );
        let err = route(Stream::Vnc, "tenant-a", "web", None, None, &none).unwrap_err();
        assert!(err.to_string().contains("--console-url"), "{err}");
        assert_eq!(
            route(Stream::Vnc, "tenant-a", "web", Some("vms.example"), None, &none),
            Err(ScreenError::BadUrl("vms.example".into()))
        );
    }
}
