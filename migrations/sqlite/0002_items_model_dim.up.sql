-- Open checks that no row of the model id it opens for has another
-- dimension; with this index that check reads one index entry instead of
-- every row of the model.
CREATE INDEX items_model_dim ON items (model_id, dim);
