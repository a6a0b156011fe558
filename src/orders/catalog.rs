//! What `OCTILLERY` orders: Pokémon names and countries, shipped in `datasets/` and compiled in.
//!
//! The reference fetched a random Pokémon from pokeapi.co per order; chaoslab runs offline, so it ships the
//! 151 first-generation names in PokeAPI's lowercase form (`mr-mime`, `nidoran-f`). The 195 countries
//! follow the reference's `countries.txt` (Afghanistan … Zambia).

/// Pokémon names, one per line.
pub const POKEMON: &str = include_str!("../../datasets/pokemon.txt");
/// Country names, one per line.
pub const COUNTRIES: &str = include_str!("../../datasets/countries.txt");

/// The names of a list, skipping blank lines.
pub fn names(list: &'static str) -> Vec<&'static str> {
    list.lines().map(str::trim).filter(|l| !l.is_empty()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_have_the_reference_shape() {
        let countries = names(COUNTRIES);
        assert_eq!(countries.len(), 195);
        assert_eq!((countries[0], countries[194]), ("Afghanistan", "Zambia"));
        assert!(!countries.contains(&"Zimbabwe"));
        let pokemon = names(POKEMON);
        assert_eq!(pokemon.len(), 151);
        assert!(pokemon.iter().all(|p| p.chars().all(|c| c.is_ascii_lowercase() || c == '-')));
        assert!(pokemon.contains(&"rapidash") && pokemon.contains(&"ditto"));
    }
}
