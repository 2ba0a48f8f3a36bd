/// The release this build is, as `moonhook --version` and `moonhook_build_info` report it.
public enum MoonhookVersion {
    public static let current = "0.4.0"
}
