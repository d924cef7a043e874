//! Order numbers: `CART-` and 8 Crockford base32 characters (40 random bits), e.g.
//! `CART-7K3M9Q2X`. Random rather than sequential because the number is public (tracking
//! page): it must not reveal sales volume or let anyone walk through other orders.

/// Crockford's alphabet: no I, L, O or U, so numbers read aloud or typed are unambiguous.
const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
const LENGTH: usize = 8;
pub const PREFIX: &str = "CART-";

/// A fresh random order number (uniqueness is enforced by the database).
pub fn generate() -> String {
    encode(rand::random::<u64>())
}

fn encode(bits: u64) -> String {
    let mut out = String::with_capacity(PREFIX.len() + LENGTH);
    out.push_str(PREFIX);
    for i in (0..LENGTH).rev() {
        let index = ((bits >> (i * 5)) & 0x1f) as usize;
        out.push(char::from(ALPHABET[index]));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_have_the_prefix_and_eight_unambiguous_characters() {
        for _ in 0..1000 {
            let n = generate();
            let code = n.strip_prefix(PREFIX).unwrap();
            assert_eq!(code.len(), LENGTH);
            assert!(code.bytes().all(|b| ALPHABET.contains(&b)), "{n}");
            assert!(!code.contains(['I', 'L', 'O', 'U']));
        }
    }

    #[test]
    fn encoding_is_deterministic_in_the_low_forty_bits() {
        assert_eq!(encode(0), "CART-00000000");
        assert_eq!(encode(u64::MAX), "CART-ZZZZZZZZ");
        assert_eq!(encode(31), "CART-0000000Z");
        assert_eq!(encode(32), "CART-00000010");
    }
}
