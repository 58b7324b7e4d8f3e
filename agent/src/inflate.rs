//! gunzip of whole log objects for the reading side (`fetch`, `verify`, `report`).
//!
//! The agent writes each object as one gzip member (`compress`), whose trailer gives the exact
//! size of the content: such objects are inflated in one call by libdeflate, about twice as fast
//! as a streaming decoder. Anything else — several members (objects concatenated by hand), a
//! damaged trailer — goes through flate2's multi-member decoder, which also gives the error.

use libdeflate_sys as sys;
use std::cell::RefCell;
use std::io::Read;
use std::ptr::NonNull;

/// Beyond this a claimed size is not believed (and not reserved): the streaming decoder
/// grows its buffer as the data really comes.
const ONE_SHOT_MAX: usize = 256 << 20;

/// The content of gzip data `gz`, in `out` (whatever `out` held is dropped).
pub fn gunzip(gz: &[u8], out: &mut Vec<u8>) -> std::io::Result<()> {
    out.clear();
    if let Some(size) = claimed_size(gz) {
        if INFLATER.with_borrow_mut(|d| d.one_member(gz, size, out)) {
            return Ok(());
        }
        out.clear();
    }
    flate2::read::MultiGzDecoder::new(gz)
        .read_to_end(out)
        .map(drop)
}

/// ISIZE, the last four bytes of a gzip member: the content's size (mod 2^32), if plausible.
fn claimed_size(gz: &[u8]) -> Option<usize> {
    const HEADER_AND_TRAILER: usize = 18;
    let tail: [u8; 4] = gz.get(gz.len().checked_sub(4)?..)?.try_into().ok()?;
    let size = usize::try_from(u32::from_le_bytes(tail)).ok()?;
    // Deflate expands at most 1032:1; a size beyond that is not this member's.
    let possible = gz
        .len()
        .saturating_sub(HEADER_AND_TRAILER)
        .saturating_mul(1032);
    (gz.len() >= HEADER_AND_TRAILER && size <= possible && size <= ONE_SHOT_MAX).then_some(size)
}

thread_local! {
    /// libdeflate's decompressor holds ~30 KiB of tables: one per thread, kept.
    static INFLATER: RefCell<Inflater> = RefCell::new(Inflater::new());
}

struct Inflater(NonNull<sys::libdeflate_decompressor>);

impl Inflater {
    fn new() -> Inflater {
        // SAFETY: no preconditions; it returns NULL only when out of memory.
        let d = unsafe { sys::libdeflate_alloc_decompressor() };
        Inflater(NonNull::new(d).expect("out of memory allocating a decompressor"))
    }

    /// Inflate `gz` as exactly one member of `size` bytes into `out` (empty); false if it is
    /// not that (`out` may then hold garbage up to its length).
    fn one_member(&mut self, gz: &[u8], size: usize, out: &mut Vec<u8>) -> bool {
        out.reserve_exact(size);
        let (mut used, mut written) = (0usize, 0usize);
        // SAFETY: `gz` is readable for gz.len() bytes; `out` has room for `size` bytes past its
        // (zero) length, and libdeflate writes at most `size` bytes and reports how many.
        let r = unsafe {
            sys::libdeflate_gzip_decompress_ex(
                self.0.as_ptr(),
                gz.as_ptr().cast(),
                gz.len(),
                out.as_mut_ptr().cast(),
                size,
                &mut used,
                &mut written,
            )
        };
        if r != sys::libdeflate_result_LIBDEFLATE_SUCCESS {
            return false;
        }
        // SAFETY: libdeflate initialised the first `written` (≤ size ≤ capacity) bytes.
        unsafe { out.set_len(written) };
        used == gz.len()
    }
}

impl Drop for Inflater {
    fn drop(&mut self) {
        // SAFETY: allocated by libdeflate_alloc_decompressor, freed once.
        unsafe { sys::libdeflate_free_decompressor(self.0.as_ptr()) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn inflate(gz: &[u8]) -> std::io::Result<Vec<u8>> {
        let mut out = b"left over".to_vec();
        gunzip(gz, &mut out).map(|()| out)
    }

    fn flate2_gzip(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    fn text(n: usize) -> Vec<u8> {
        (0..n)
            .flat_map(|i| format!("line {i} of the log\n").into_bytes())
            .collect()
    }

    #[test]
    fn one_member_is_inflated_in_one_call() {
        let data = text(20_000);
        let gz = crate::compress::gzip(&data, 1);
        assert_eq!(claimed_size(&gz), Some(data.len()));
        let mut out = Vec::new();
        assert!(INFLATER.with_borrow_mut(|d| d.one_member(&gz, data.len(), &mut out)));
        assert_eq!(out, data);
        assert_eq!(inflate(&gz).unwrap(), data);
        assert_eq!(inflate(&crate::compress::gzip(b"", 1)).unwrap(), b"");
    }

    #[test]
    fn every_member_of_a_concatenation_is_read() {
        let (a, b) = (text(3000), b"the second member\n".to_vec());
        let gz = [flate2_gzip(&a), flate2_gzip(&b)].concat();
        let mut out = Vec::new();
        assert!(!INFLATER.with_borrow_mut(|d| d.one_member(&gz, a.len() + b.len(), &mut out)));
        assert_eq!(inflate(&gz).unwrap(), [a, b].concat());
    }

    #[test]
    fn damaged_or_lying_objects_give_an_error_or_the_truth() {
        let data = text(5000);
        let gz = crate::compress::gzip(&data, 1);
        let mut bad = gz.clone();
        bad[gz.len() / 2] ^= 0x55;
        assert!(inflate(&bad).is_err());
        assert!(inflate(&gz[..gz.len() - 6]).is_err());
        assert!(inflate(b"not gzip at all").is_err());
        let mut lying = gz.clone();
        let n = lying.len();
        lying[n - 4..].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(claimed_size(&lying), None);
        assert!(
            inflate(&lying).is_err(),
            "ISIZE is checked by both decoders"
        );
        lying[n - 4..].copy_from_slice(&10u32.to_le_bytes());
        assert!(inflate(&lying).is_err());
    }
}
