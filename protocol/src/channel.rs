//! Channel names: `[namespace:]name[#user1,user2]`, optionally prefixed by `$` for private channels.

/// Separates a namespace from the rest of a channel name.
pub const NAMESPACE_BOUNDARY: char = ':';
/// Starts the list of users allowed into a user-limited channel.
pub const USER_BOUNDARY: char = '#';
/// Separates users in a user-limited channel.
pub const USER_SEPARATOR: char = ',';
/// Marks a channel that always needs a subscription token.
pub const PRIVATE_PREFIX: char = '$';

/// A parsed view of a channel name; borrows the name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChannelName<'a> {
    pub full: &'a str,
    /// Empty for channels without a namespace.
    pub namespace: &'a str,
    pub private: bool,
    /// The user list after `#`, if the channel is user-limited.
    pub users: Option<&'a str>,
}

impl<'a> ChannelName<'a> {
    pub fn parse(full: &'a str) -> Self {
        let body = full.strip_prefix(PRIVATE_PREFIX).unwrap_or(full);
        let namespace = match body.find(NAMESPACE_BOUNDARY) {
            Some(i) => &body[..i],
            None => "",
        };
        let users = full.rfind(USER_BOUNDARY).map(|i| &full[i + 1..]);
        ChannelName {
            full,
            namespace,
            private: full.starts_with(PRIVATE_PREFIX),
            users,
        }
    }

    /// Whether `user` is one of the users a `#` channel names.
    pub fn allows_user(&self, user: &str) -> bool {
        !user.is_empty()
            && self
                .users
                .is_some_and(|list| list.split(USER_SEPARATOR).any(|u| u == user))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_namespace_private_and_users() {
        let c = ChannelName::parse("chat:room#42,7");
        assert_eq!(c.namespace, "chat");
        assert!(!c.private);
        assert!(c.allows_user("42") && c.allows_user("7"));
        assert!(!c.allows_user("4") && !c.allows_user(""));

        let c = ChannelName::parse("$secret:x");
        assert_eq!(c.namespace, "secret");
        assert!(c.private);

        let c = ChannelName::parse("news");
        assert_eq!(c.namespace, "");
        assert_eq!(c.users, None);
    }
}
