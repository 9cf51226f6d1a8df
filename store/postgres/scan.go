package postgres

// scanner is a pgx.Row or pgx.Rows.
type scanner interface{ Scan(dest ...any) error }
