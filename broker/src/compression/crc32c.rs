//! CRC-32C (Castagnoli, reflected polynomial `0x82F63B78`) and the masking that the Snappy and
//! S2 framing formats apply to it.
//!
//! Table-driven, eight bytes per step ("slicing by 8"); the tables are computed at compile time.

const POLYNOMIAL: u32 = 0x82F6_3B78;

/// Added after rotating, so that a checksum of data that itself contains checksums does not
/// degenerate (framing format, section 3).
const MASK_DELTA: u32 = 0xA282_EAD8;

const TABLES: [[u32; 256]; 8] = build_tables();

const fn build_tables() -> [[u32; 256]; 8] {
    let mut tables = [[0u32; 256]; 8];
    let mut index = 0;
    while index < 256 {
        let mut value = index as u32;
        let mut bit = 0;
        while bit < 8 {
            value = if value & 1 == 1 {
                (value >> 1) ^ POLYNOMIAL
            } else {
                value >> 1
            };
            bit += 1;
        }
        tables[0][index] = value;
        index += 1;
    }
    let mut slice = 1;
    while slice < 8 {
        let mut index = 0;
        while index < 256 {
            let previous = tables[slice - 1][index];
            tables[slice][index] = (previous >> 8) ^ tables[0][(previous & 0xFF) as usize];
            index += 1;
        }
        slice += 1;
    }
    tables
}

/// The plain CRC-32C of `data`.
pub fn crc32c(data: &[u8]) -> u32 {
    let mut state = !0u32;
    let mut words = data.chunks_exact(8);
    for word in &mut words {
        let low = state ^ u32::from_le_bytes([word[0], word[1], word[2], word[3]]);
        state = TABLES[7][(low & 0xFF) as usize]
            ^ TABLES[6][((low >> 8) & 0xFF) as usize]
            ^ TABLES[5][((low >> 16) & 0xFF) as usize]
            ^ TABLES[4][(low >> 24) as usize]
            ^ TABLES[3][word[4] as usize]
            ^ TABLES[2][word[5] as usize]
            ^ TABLES[1][word[6] as usize]
            ^ TABLES[0][word[7] as usize];
    }
    for &byte in words.remainder() {
        state = (state >> 8) ^ TABLES[0][((state ^ u32::from(byte)) & 0xFF) as usize];
    }
    !state
}

/// The checksum stored in a data chunk: the CRC-32C of the uncompressed bytes, rotated right
/// by 15 bits plus a constant.
pub fn masked_crc32c(data: &[u8]) -> u32 {
    crc32c(data).rotate_right(15).wrapping_add(MASK_DELTA)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bitwise_crc32c(data: &[u8]) -> u32 {
        let mut state = !0u32;
        for &byte in data {
            state ^= u32::from(byte);
            for _ in 0..8 {
                state = if state & 1 == 1 {
                    (state >> 1) ^ POLYNOMIAL
                } else {
                    state >> 1
                };
            }
        }
        !state
    }

    #[test]
    fn check_value_of_the_standard_test_string() {
        assert_eq!(crc32c(b"123456789"), 0xE306_9283);
        assert_eq!(crc32c(b""), 0);
    }

    #[test]
    fn sliced_computation_matches_the_bitwise_definition() {
        let data: Vec<u8> = (0..1000u32).map(|value| (value * 31 + 7) as u8).collect();
        for length in [0, 1, 7, 8, 9, 15, 16, 17, 63, 64, 65, 999, 1000] {
            assert_eq!(crc32c(&data[..length]), bitwise_crc32c(&data[..length]));
        }
    }

    #[test]
    fn masked_values_match_go_hash_crc32_with_the_framing_mask() {
        assert_eq!(masked_crc32c(b""), 0xA282_EAD8);
        assert_eq!(masked_crc32c(b"hello"), 0x191C_1FBB);
        assert_eq!(masked_crc32c(b"123456789"), 0xC78A_B0E5);
    }
}
