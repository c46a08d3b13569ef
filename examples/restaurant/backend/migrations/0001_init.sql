-- Menu and reservations, with a few dishes to start from.
CREATE TABLE menu_items (
    id          INTEGER PRIMARY KEY,
    name        TEXT    NOT NULL UNIQUE,
    description TEXT    NOT NULL DEFAULT '',
    category    TEXT    NOT NULL,
    price_cents INTEGER NOT NULL CHECK (price_cents >= 0),
    position    INTEGER NOT NULL DEFAULT 0
);

CREATE TABLE reservations (
    id         INTEGER PRIMARY KEY,
    name       TEXT    NOT NULL,
    email      TEXT    NOT NULL,
    party_size INTEGER NOT NULL CHECK (party_size BETWEEN 1 AND 20),
    starts_at  TEXT    NOT NULL, -- RFC 3339, UTC
    notes      TEXT    NOT NULL DEFAULT '',
    created_at TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ', 'now'))
);

CREATE INDEX reservations_starts_at ON reservations (starts_at);

INSERT INTO menu_items (name, description, category, price_cents, position) VALUES
    ('Tomato soup',          'Roasted tomatoes, basil oil, sourdough croutons', 'Starters', 650,  10),
    ('Burrata',              'Burrata, grilled peaches, hazelnuts',             'Starters', 1100, 20),
    ('Mushroom risotto',     'Carnaroli rice, porcini, parmesan',               'Mains',    1650, 30),
    ('Grilled trout',        'Brown butter, capers, new potatoes',              'Mains',    1900, 40),
    ('Chickpea curry',       'Coconut, spinach, basmati rice',                  'Mains',    1450, 50),
    ('Lemon tart',           'Shortcrust, lemon curd, crème fraîche',           'Desserts', 750,  60),
    ('Chocolate mousse',     'Dark chocolate, sea salt, olive oil',             'Desserts', 800,  70);
