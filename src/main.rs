use std::process::ExitCode;

#[actix_web::main]
async fn main() -> ExitCode {
    medport::cli::main().await
}
