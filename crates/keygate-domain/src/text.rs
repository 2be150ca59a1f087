//! Names people read on the console: what may not be in one (characters that show nothing), and
//! what a name looks like once the characters that look alike are folded together, so that a
//! custom group cannot pass for a system group (`Supervisor` with a zero-width space, or with a
//! Cyrillic `о`).

/// Whether `text` holds a character that shows nothing or moves text around: a control, a Unicode
/// format character (zero-width spaces and joiners, bidirectional controls, the byte-order mark,
/// tags), a space other than U+0020, a variation selector, or a filler that renders blank.
pub fn has_invisible(text: &str) -> bool {
    text.chars().any(|c| c.is_control() || invisible(c) || (c.is_whitespace() && c != ' '))
}

fn invisible(c: char) -> bool {
    matches!(
        u32::from(c),
        0x00AD
            | 0x034F
            | 0x061C
            | 0x115F..=0x1160
            | 0x17B4..=0x17B5
            | 0x180B..=0x180F
            | 0x200B..=0x200F
            | 0x202A..=0x202E
            | 0x2060..=0x206F
            | 0x2800
            | 0x3164
            | 0xFE00..=0xFE0F
            | 0xFEFF
            | 0xFFA0
            | 0xFFF0..=0xFFFB
            | 0x1D173..=0x1D17A
            | 0xE0000..=0xE0FFF
    )
}

/// `text` as it looks: lower case, marks dropped, and each character that looks like a Latin
/// letter or digit replaced by it (Cyrillic and Greek look-alikes, full-width forms, `1`, `l`
/// and `i`, `0` and `o`). Two names with the same skeleton are easily taken for each other.
pub fn skeleton(text: &str) -> String {
    text.to_lowercase().chars().filter(|c| !mark(*c)).map(look_alike).collect()
}

/// Combining marks: accents that a name would show on the letter before them.
fn mark(c: char) -> bool {
    matches!(u32::from(c), 0x0300..=0x036F | 0x1AB0..=0x1AFF | 0x1DC0..=0x1DFF | 0x20D0..=0x20FF | 0xFE20..=0xFE2F)
}

fn look_alike(c: char) -> char {
    let full_width = u32::from(c).wrapping_sub(0xFEE0);
    let c = match char::from_u32(full_width) {
        Some(ascii) if (0xFF01..=0xFF5E).contains(&u32::from(c)) => ascii.to_ascii_lowercase(),
        _ => c,
    };
    match c {
        'а' | 'α' => 'a',
        'в' | 'β' | 'ь' => 'b',
        'с' | 'ϲ' => 'c',
        'ԁ' => 'd',
        'е' | 'ё' | 'ε' | 'є' => 'e',
        'ɡ' => 'g',
        'н' | 'һ' => 'h',
        '1' | 'l' | '|' | 'ı' | 'ι' | 'і' | 'ї' | 'ℓ' | 'ӏ' => 'i',
        'ј' => 'j',
        'к' | 'κ' => 'k',
        'м' => 'm',
        'η' | 'п' => 'n',
        '0' | 'о' | 'ο' | 'σ' => 'o',
        'р' | 'ρ' => 'p',
        'ԛ' => 'q',
        'г' => 'r',
        'ѕ' => 's',
        'т' | 'τ' => 't',
        'υ' | 'μ' => 'u',
        'ν' => 'v',
        'ԝ' | 'ω' => 'w',
        'х' | 'χ' => 'x',
        'у' | 'γ' => 'y',
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn characters_that_show_nothing_are_found() {
        for text in
            ["Super\u{200B}visor", "Sales\u{FEFF}", "A\u{202E}B", "User\u{A0}configurator", "x\u{2060}", "\u{3164}"]
        {
            assert!(has_invisible(text), "{text:?}");
        }
        for text in ["Invoice export", "Účetní oddělení", "Продажи", "営業", "R&D (EU)"] {
            assert!(!has_invisible(text), "{text:?}");
        }
    }

    #[test]
    fn look_alikes_of_a_name_share_its_skeleton_and_other_names_do_not() {
        let supervisor = skeleton("Supervisor");
        for look_alike in [
            "SUPERVISOR",
            "Supervis\u{43E}r",
            "Superv1sor",
            "Supervisor\u{301}",
            "\u{FF33}upervisor",
            "\u{405}upervisor",
        ] {
            assert_eq!(skeleton(look_alike), supervisor, "{look_alike:?}");
        }
        assert_eq!(skeleton("\u{421}onfigurator"), skeleton("Configurator"));
        assert_ne!(skeleton("Supervisors"), supervisor);
        assert_ne!(skeleton("Supervisión"), supervisor, "a precomposed letter is another letter");
    }
}
