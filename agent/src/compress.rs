//! The compress stage: a whole batch to one gzip member (plain gzip, readable by every tool).

use flate2::write::GzEncoder;
use flate2::Compression;
use std::io::Write;

pub fn gzip(data: &[u8], level: u32) -> Vec<u8> {
    // Log text compresses 5-15x; start at 1/4 to avoid most regrowth without over-reserving.
    let mut enc = GzEncoder::new(
        Vec::with_capacity(data.len() / 4 + 64),
        Compression::new(level),
    );
    enc.write_all(data).expect("writing to a Vec cannot fail");
    enc.finish().expect("writing to a Vec cannot fail")
}

#[cfg(test)]
mod tests {
    #[test]
    fn round_trips() {
        use std::io::Read;
        let text = b"{\"a\":1}\n".repeat(1000);
        let gz = super::gzip(&text, 6);
        assert!(gz.len() < text.len() / 10);
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(&gz[..])
            .read_to_end(&mut out)
            .unwrap();
        assert_eq!(out, text);
    }
}
