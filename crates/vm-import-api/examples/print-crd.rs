//! Prints the VMAdoption CRD (`make crd` writes it into the controller chart).

fn main() -> std::process::ExitCode {
    match vm_import_api::crd_yaml() {
        Ok(yaml) => {
            print!("{yaml}");
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
