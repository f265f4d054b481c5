//! `kubectl keyward ...`: the same program under the name kubectl looks for.
fn main() -> std::process::ExitCode {
    keyward::main()
}
