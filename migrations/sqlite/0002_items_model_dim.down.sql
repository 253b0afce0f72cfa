DROP INDEX items_model_dim;
