//! `DETECTIVE-PIKACHU`'s fraud rule, exactly as the reference writes it.
//!
//! An order is fraudulent when its price is above 200, its user is 5, or the Pokémon's name starts with
//! `d`, `f` or `a` (case-sensitive, lowercase PokeAPI names). Country is not used.

/// True when the reference would reject the order.
pub fn is_fraud(user_id: i64, pokemon: &str, price: f64) -> bool {
    price > 200.0 || user_id == 5 || pokemon.starts_with(['d', 'f', 'a'])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_three_rules() {
        assert!(is_fraud(1, "pikachu", 200.5));
        assert!(!is_fraud(1, "pikachu", 200.0), "strictly above 200");
        assert!(is_fraud(5, "pikachu", 1.0));
        for name in ["ditto", "farfetchd", "abra"] {
            assert!(is_fraud(1, name, 1.0), "{name}");
        }
        assert!(!is_fraud(1, "Ditto", 1.0), "case-sensitive, as the reference");
        assert!(!is_fraud(2, "rapidash", 150.0));
    }
}
