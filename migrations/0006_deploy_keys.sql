-- An app's SSH deploy key (ed25519) for private git repositories: the public
-- half in OpenSSH format (shown to paste into GitHub/GitLab), the private
-- half encrypted with the store's key (associated data `deploy-key:app:<id>`).
ALTER TABLE deploy_settings ADD COLUMN deploy_key_public TEXT;
ALTER TABLE deploy_settings ADD COLUMN deploy_key_nonce BLOB;
ALTER TABLE deploy_settings ADD COLUMN deploy_key_private BLOB;
