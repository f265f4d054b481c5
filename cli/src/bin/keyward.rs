fn main() -> std::process::ExitCode {
    keyward::main()
}
