//! Accounts on DynamoDB.

use super::*;

#[async_trait]
impl AccountStore for DynamoStore {
    async fn account(&self, sid: &AccountSid) -> Result<Option<Account>, StoreError> {
        let found = self
            .read_item(&self.tables.accounts, "AccountSid", sid.as_str())
            .await?;
        found.map(|i| item::account_from(&i)).transpose()
    }

    async fn insert_account(&self, account: &Account) -> Result<(), InsertError> {
        self.insert_item(
            &self.tables.accounts,
            "AccountSid",
            item::account_item(account),
        )
        .await
    }

    async fn update_account(&self, account: &Account) -> Result<bool, StoreError> {
        let mut update =
            "SET AuthToken = :token, #status = :status, ListingShards = :shards".to_owned();
        let mut request = self
            .client
            .update_item()
            .table_name(&self.tables.accounts)
            .key("AccountSid", s(account.sid.as_str()))
            .condition_expression("attribute_exists(AccountSid)")
            .expression_attribute_names("#status", "Status")
            .expression_attribute_values(":token", s(account.auth_token.expose()))
            .expression_attribute_values(":status", s(account.status.as_str()))
            .expression_attribute_values(":shards", n(account.listing_shards));
        let mut removed = Vec::new();
        match account.rate_limit {
            Some(limit) => {
                update.push_str(", RatePerSecond = :rate, RateBurst = :burst");
                request = request
                    .expression_attribute_values(":rate", n(limit.per_second))
                    .expression_attribute_values(":burst", n(limit.burst));
            }
            None => removed.extend(["RatePerSecond", "RateBurst"]),
        }
        match &account.usage_key {
            Some(key) => {
                update.push_str(", UsageKey = :key");
                request = request.expression_attribute_values(":key", s(key));
            }
            None => removed.push("UsageKey"),
        }
        if !removed.is_empty() {
            update.push_str(&format!(" REMOVE {}", removed.join(", ")));
        }
        landed(request.update_expression(update).send().await)
    }
}
