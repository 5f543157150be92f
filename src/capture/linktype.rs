//! libpcap link-layer header types (LINKTYPE_* values) this tool reads, and their names.

pub const NULL: i32 = 0;
pub const ETHERNET: i32 = 1;
pub const RAW_OPENBSD: i32 = 12;
pub const RAW_BSDOS: i32 = 14;
pub const RAW: i32 = 101;
pub const LOOP: i32 = 108;
pub const LINUX_SLL: i32 = 113;
pub const IPV4: i32 = 228;
pub const IPV6: i32 = 229;
pub const LINUX_SLL2: i32 = 276;

pub fn supported(lt: i32) -> bool {
    matches!(
        lt,
        NULL | ETHERNET
            | RAW_OPENBSD
            | RAW_BSDOS
            | RAW
            | LOOP
            | LINUX_SLL
            | IPV4
            | IPV6
            | LINUX_SLL2
    )
}

pub fn name(lt: i32) -> &'static str {
    match lt {
        NULL => "null",
        ETHERNET => "ethernet",
        RAW_OPENBSD | RAW_BSDOS | RAW => "raw",
        LOOP => "loop",
        LINUX_SLL => "linux_sll",
        IPV4 => "ipv4",
        IPV6 => "ipv6",
        LINUX_SLL2 => "linux_sll2",
        _ => "unsupported",
    }
}
