-- A realistic catalog generated in SQL: products :first..:last (psql variables), Portuguese
-- names and descriptions built from word lists, spread over twelve categories, with prices,
-- stock, dimensions and NCM codes in the ranges a Brazilian store has. Deterministic: product
-- n always gets the same text, so runs are comparable. Run twice with consecutive ranges to
-- grow a catalog (the benchmark measures 1,000 products, then 50,000).

INSERT INTO categories (id, name, slug, description)
SELECT md5('bench-category-' || c.slug)::uuid, c.name, c.slug, 'Categoria ' || c.name
FROM (VALUES
    ('Cafés e Chás', 'cafes-e-chas'), ('Cozinha', 'cozinha'), ('Moda Masculina', 'moda-masculina'),
    ('Moda Feminina', 'moda-feminina'), ('Calçados', 'calcados'), ('Eletrônicos', 'eletronicos'),
    ('Livros', 'livros'), ('Esporte e Lazer', 'esporte-e-lazer'), ('Casa e Decoração', 'casa-e-decoracao'),
    ('Beleza', 'beleza'), ('Brinquedos', 'brinquedos'), ('Papelaria', 'papelaria')
) AS c(name, slug)
ON CONFLICT DO NOTHING;

WITH words AS (
    SELECT
        ARRAY['Café', 'Chá', 'Caneca', 'Panela', 'Frigideira', 'Camiseta', 'Camisa', 'Vestido',
              'Saia', 'Tênis', 'Sandália', 'Bota', 'Fone de Ouvido', 'Carregador', 'Caixa de Som',
              'Livro', 'Caderno', 'Bola', 'Bicicleta', 'Mochila', 'Almofada', 'Luminária',
              'Tapete', 'Perfume', 'Sabonete', 'Creme', 'Boneca', 'Quebra-Cabeça', 'Caneta',
              'Agenda'] AS kinds,
        ARRAY[1, 1, 2, 2, 2, 3, 3, 4, 4, 5, 5, 5, 6, 6, 6, 7, 12, 8, 8, 8, 9, 9, 9, 10, 10, 10,
              11, 11, 12, 12] AS kind_category,
        ARRAY['Orgânico', 'Artesanal', 'Premium', 'Clássico', 'Tradicional', 'Especial',
              'Econômico', 'Compacto', 'Reforçado', 'Macio', 'Leve', 'Térmico', 'Sem Fio',
              'Infantil', 'Esportivo', 'Elegante', 'Colorido', 'Básico', 'Importado',
              'Nacional'] AS qualities,
        ARRAY['de Algodão', 'de Couro', 'de Cerâmica', 'de Inox', 'de Bambu', 'de Madeira',
              'de Vidro', 'de Lã', 'de Silicone', 'Arábica', 'Torrado', 'Integral'] AS materials,
        ARRAY['Aurora', 'Ipê', 'Jabuticaba', 'Carioca', 'Paulista', 'Mineira', 'Baiana',
              'Gaúcha', 'Amazônia', 'Cerrado', 'Pantanal', 'Serra'] AS lines,
        ARRAY['Feito com cuidado para durar muitos anos.', 'Ideal para o dia a dia da família.',
              'Ótimo presente para quem você ama.', 'Produzido por pequenos fornecedores brasileiros.',
              'Acabamento de qualidade e garantia de doze meses.', 'Fácil de limpar e de guardar.',
              'Combina com qualquer ambiente da casa.', 'Entrega rápida para todo o Brasil.',
              'Aroma marcante e sabor equilibrado.', 'Confortável do começo ao fim do dia.',
              'Tecnologia moderna com preço justo.', 'Embalagem reciclável e sustentável.'] AS sentences
),
generated AS (
    SELECT
        g AS n,
        w.kinds[1 + g % 30] || ' ' || w.qualities[1 + (g / 30) % 20] || ' '
            || w.materials[1 + (g / 600) % 12] || ' ' || w.lines[1 + (g / 7200) % 12] AS name,
        w.kind_category[1 + g % 30] AS category_n,
        w.sentences[1 + g % 12] || ' ' || w.sentences[1 + (g / 12) % 12] || ' '
            || w.sentences[1 + (g / 144) % 12] || ' Linha ' || w.lines[1 + g % 12]
            || ', modelo ' || g || '.' AS description
    FROM generate_series(:first::int, :last::int) AS g, words w
)
INSERT INTO products (id, sku, name, slug, description, price_cents, stock, category_id, featured,
                      weight_grams, height_cm, width_cm, length_cm, ncm, images, created_at, updated_at)
SELECT
    md5('bench-product-' || n)::uuid,
    'BENCH-' || lpad(n::text, 6, '0'),
    name,
    trim(BOTH '-' FROM regexp_replace(lower(immutable_unaccent(name)), '[^a-z0-9]+', '-', 'g')) || '-' || n,
    description,
    990 + (n * 7919) % 49000,
    1000000,
    md5('bench-category-' || (ARRAY['cafes-e-chas', 'cozinha', 'moda-masculina', 'moda-feminina',
        'calcados', 'eletronicos', 'livros', 'esporte-e-lazer', 'casa-e-decoracao', 'beleza',
        'brinquedos', 'papelaria'])[category_n])::uuid,
    n % 50 = 0,
    100 + (n * 31) % 4900,
    2 + n % 40,
    10 + n % 30,
    15 + n % 35,
    lpad(((n::bigint * 104729) % 100000000)::text, 8, '0'),
    ARRAY['https://cdn.loja.example/produtos/' || n || '.jpg'],
    now() - make_interval(mins => n),
    now() - make_interval(mins => n)
FROM generated;

ANALYZE categories;
ANALYZE products;
