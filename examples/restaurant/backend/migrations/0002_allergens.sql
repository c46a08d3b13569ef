-- Allergens shown next to each dish, comma-separated.
ALTER TABLE menu_items ADD COLUMN allergens TEXT NOT NULL DEFAULT '';

UPDATE menu_items SET allergens = 'gluten'                 WHERE name = 'Tomato soup';
UPDATE menu_items SET allergens = 'milk,nuts'              WHERE name = 'Burrata';
UPDATE menu_items SET allergens = 'milk'                   WHERE name = 'Mushroom risotto';
UPDATE menu_items SET allergens = 'fish,milk'              WHERE name = 'Grilled trout';
UPDATE menu_items SET allergens = 'gluten,eggs,milk'       WHERE name = 'Lemon tart';
UPDATE menu_items SET allergens = 'eggs,milk'              WHERE name = 'Chocolate mousse';
