//! The Telegram bot client against the fake Bot API (`support::fake_telegram`): commands in,
//! allowed chats only, update offsets across restarts, buttons, rate limits, 429, splitting,
//! escaping, and the token kept out of errors.

use std::sync::atomic::Ordering;
use std::time::Duration;

use cryptoflow_operators::trading::conditional::Origin;
use cryptoflow_sources::telegram::{
    confirm_buttons, escape_html, BotCommand, BotInput, BotToken, MessageText, TelegramBot,
    TelegramClient, TelegramConfig, TelegramError,
};
use tokio::sync::mpsc;

use crate::support::fake_telegram::FakeTelegram;

const TOKEN: &str = "123456:TEST-secret_token";
const CHAT: i64 = 42;

fn token() -> BotToken {
    BotToken::new(TOKEN).unwrap()
}

fn config(fake: &FakeTelegram, allowed: &[i64]) -> TelegramConfig {
    TelegramConfig {
        api_base: fake.base_url(),
        allowed_chat_ids: allowed.to_vec(),
        poll_timeout_s: 5,
        ..Default::default()
    }
}

async fn next(rx: &mut mpsc::Receiver<BotInput>) -> BotInput {
    tokio::time::timeout(Duration::from_secs(5), rx.recv())
        .await
        .expect("timed out waiting for a bot input")
        .expect("the bot stopped")
}

fn chat_and_command(input: BotInput) -> (i64, BotCommand) {
    let BotInput::Command {
        chat_id, command, ..
    } = input;
    (chat_id, command)
}

/// Waits until `cond` holds (panics after 5 s).
async fn eventually(cond: impl Fn() -> bool) {
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while !cond() {
        assert!(
            std::time::Instant::now() < deadline,
            "condition not reached"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Nothing more arrives within `wait`.
async fn quiet(rx: &mut mpsc::Receiver<BotInput>, wait: Duration) {
    if let Ok(Some(i)) = tokio::time::timeout(wait, rx.recv()).await {
        panic!("unexpected input {i:?}");
    }
}

#[tokio::test]
async fn commands_from_an_allowed_chat_arrive() {
    let fake = FakeTelegram::start(TOKEN).await;
    let (bot, mut rx) = TelegramBot::start(&config(&fake, &[CHAT]), token(), None).unwrap();
    for text in [
        "/status@MyBot",
        "/positions",
        "/pnl",
        "/pause",
        "/resume",
        "/kill",
        "/help",
        "/start",
        " buy 0.01 BTCUSDT at 43000 ",
    ] {
        fake.push_message(CHAT, text);
    }
    let BotInput::Command {
        chat_id,
        from,
        command,
    } = next(&mut rx).await;
    assert_eq!((chat_id, command), (CHAT, BotCommand::Status));
    assert_eq!(from.id, CHAT);
    assert_eq!(from.username.as_deref(), Some("user42"));
    assert_eq!(from.name, "Test User");
    let mut got = Vec::new();
    for _ in 0..8 {
        got.push(chat_and_command(next(&mut rx).await).1);
    }
    assert_eq!(
        got,
        vec![
            BotCommand::Positions,
            BotCommand::Pnl,
            BotCommand::Pause,
            BotCommand::Resume,
            BotCommand::Kill,
            BotCommand::Help,
            BotCommand::Help,
            BotCommand::Text {
                text: "buy 0.01 BTCUSDT at 43000".into(),
                origin: Origin {
                    channel: format!("telegram:{CHAT}"),
                    user: CHAT.to_string(),
                },
            },
        ]
    );
    // An unknown command is answered with the help, and is no input.
    fake.push_message(CHAT, "/xyz@MyBot now");
    let sent = fake.wait_sent(1, Duration::from_secs(5)).await;
    assert_eq!(sent[0].chat_id, CHAT);
    assert!(
        sent[0].text.starts_with("Unknown command /xyz."),
        "{}",
        sent[0].text
    );
    assert!(sent[0].text.contains("/status"), "{}", sent[0].text);
    quiet(&mut rx, Duration::from_millis(200)).await;
    assert_eq!(bot.stats().inputs.load(Ordering::Relaxed), 9);
    bot.shutdown(Duration::from_secs(1)).await.unwrap();
}

#[tokio::test]
async fn other_chats_are_ignored_and_not_answered() {
    let fake = FakeTelegram::start(TOKEN).await;
    let (bot, mut rx) = TelegramBot::start(&config(&fake, &[CHAT]), token(), None).unwrap();
    fake.push_message(666, "/kill");
    fake.push_message(666, "/xyz");
    fake.push_message(666, "sell everything");
    fake.push_callback(666, "confirm:ord-1");
    fake.push_message(CHAT, "/status");
    // The allowed chat's command comes after the others: they were all read by then.
    assert_eq!(
        chat_and_command(next(&mut rx).await),
        (CHAT, BotCommand::Status)
    );
    quiet(&mut rx, Duration::from_millis(300)).await;
    assert_eq!(bot.stats().ignored.load(Ordering::Relaxed), 4);
    assert!(fake.sent().is_empty(), "{:?}", fake.sent());
    assert!(fake.answered().is_empty(), "{:?}", fake.answered());
    bot.shutdown(Duration::from_secs(1)).await.unwrap();

    // Nobody is allowed by default.
    let (bot, mut rx) = TelegramBot::start(&config(&fake, &[]), token(), None).unwrap();
    fake.push_message(CHAT, "/status");
    let stats = bot.stats();
    eventually(|| stats.ignored.load(Ordering::Relaxed) == 1).await;
    quiet(&mut rx, Duration::from_millis(200)).await;
    bot.shutdown(Duration::from_secs(1)).await.unwrap();
}

#[tokio::test]
async fn each_update_is_delivered_once_also_across_a_restart() {
    let fake = FakeTelegram::start(TOKEN).await;
    let cfg = config(&fake, &[CHAT]);
    let (bot, mut rx) = TelegramBot::start(&cfg, token(), None).unwrap();
    let u1 = fake.push_message(CHAT, "/status");
    let u2 = fake.push_message(CHAT, "/pnl");
    assert_eq!(chat_and_command(next(&mut rx).await).1, BotCommand::Status);
    assert_eq!(chat_and_command(next(&mut rx).await).1, BotCommand::Pnl);
    // The next poll confirms them: nothing comes twice.
    eventually(|| fake.poll_offsets().contains(&Some(u2 + 1))).await;
    let polls = fake.poll_offsets();
    assert_eq!(polls[0], None);
    assert!(polls.windows(2).all(|w| w[0] <= w[1]), "{polls:?}");
    quiet(&mut rx, Duration::from_millis(300)).await;
    assert_eq!(bot.offset().get(), Some(u2 + 1));
    let saved = bot.shutdown(Duration::from_secs(1)).await.unwrap();
    assert_eq!(saved, Some(u2 + 1));
    assert!(u1 < u2);

    // While the bot is down: a new update, and the server forgets what was confirmed (as if the
    // old process had died before its next poll).
    let u3 = fake.push_message(CHAT, "/positions");
    fake.forget_confirmations();
    let polls_before = fake.poll_offsets().len();
    let (bot, mut rx) = TelegramBot::start(&cfg, token(), saved).unwrap();
    assert_eq!(
        chat_and_command(next(&mut rx).await).1,
        BotCommand::Positions
    );
    quiet(&mut rx, Duration::from_millis(300)).await;
    assert_eq!(fake.poll_offsets()[polls_before], Some(u2 + 1));
    assert_eq!(bot.offset().get(), Some(u3 + 1));
    bot.shutdown(Duration::from_secs(1)).await.unwrap();

    // Without the saved offset, the forgotten updates would come again.
    fake.forget_confirmations();
    let (bot, mut rx) = TelegramBot::start(&cfg, token(), None).unwrap();
    assert_eq!(chat_and_command(next(&mut rx).await).1, BotCommand::Status);
    bot.shutdown(Duration::from_secs(1)).await.unwrap();
}

#[tokio::test]
async fn buttons_confirm_and_reject() {
    let fake = FakeTelegram::start(TOKEN).await;
    let (bot, mut rx) = TelegramBot::start(&config(&fake, &[CHAT]), token(), None).unwrap();
    let n = bot.notifier();
    n.send_with_buttons(CHAT, "Buy 0.01 BTC?", confirm_buttons("ord-7"))
        .unwrap();
    let sent = fake.wait_sent(1, Duration::from_secs(5)).await;
    assert_eq!(sent[0].text, "Buy 0.01 BTC?");
    assert_eq!(
        sent[0].buttons,
        vec![
            ("✅ Confirm".to_string(), "confirm:ord-7".to_string()),
            ("❌ Reject".to_string(), "reject:ord-7".to_string()),
        ]
    );
    let c1 = fake.push_callback(CHAT, "confirm:ord-7");
    let c2 = fake.push_callback(CHAT, "reject:ord-8");
    let c3 = fake.push_callback(CHAT, "something else");
    let BotInput::Command {
        chat_id,
        from,
        command,
    } = next(&mut rx).await;
    assert_eq!(chat_id, CHAT);
    assert_eq!(from.id, CHAT);
    assert_eq!(command, BotCommand::Confirm { id: "ord-7".into() });
    assert_eq!(
        command_of(next(&mut rx).await),
        BotCommand::Reject { id: "ord-8".into() }
    );
    quiet(&mut rx, Duration::from_millis(200)).await;
    let mut answered = fake.wait_answered(3, Duration::from_secs(5)).await;
    answered.sort();
    assert_eq!(
        answered,
        vec![
            (format!("cb{c1}"), None),
            (format!("cb{c2}"), None),
            (format!("cb{c3}"), Some("Unknown action".to_string())),
        ]
    );
    bot.shutdown(Duration::from_secs(1)).await.unwrap();
}

fn command_of(input: BotInput) -> BotCommand {
    chat_and_command(input).1
}

#[tokio::test]
async fn at_most_one_message_per_second_per_chat() {
    let fake = FakeTelegram::start(TOKEN).await;
    let mut cfg = config(&fake, &[CHAT, 43]);
    cfg.notify_chat_ids = Some(vec![CHAT]);
    let (bot, _rx) = TelegramBot::start(&cfg, token(), None).unwrap();
    let n = bot.notifier();
    let t0 = std::time::Instant::now();
    n.notify("one").unwrap();
    n.send(CHAT, "two").unwrap();
    n.notify("three").unwrap();
    n.send(43, "other chat").unwrap();
    let sent = fake.wait_sent(4, Duration::from_secs(5)).await;
    let to42: Vec<_> = sent.iter().filter(|m| m.chat_id == CHAT).collect();
    assert_eq!(
        to42.iter().map(|m| m.text.as_str()).collect::<Vec<_>>(),
        ["one", "two", "three"]
    );
    for w in to42.windows(2) {
        let gap = w[1].at - w[0].at;
        assert!(
            gap >= Duration::from_millis(900),
            "{gap:?} between messages"
        );
    }
    // Another chat does not wait behind the first one's bucket.
    let other = sent.iter().find(|m| m.chat_id == 43).unwrap();
    assert!(
        other.at - t0 < Duration::from_millis(800),
        "{:?}",
        other.at - t0
    );
    // The bot counts a message once Telegram's answer is back, after the fake recorded it.
    let stats = bot.stats();
    eventually(|| stats.sent.load(Ordering::Relaxed) == 4).await;
    bot.shutdown(Duration::from_secs(1)).await.unwrap();
}

#[tokio::test]
async fn retry_after_is_honoured_and_the_message_delivered_once() {
    let fake = FakeTelegram::start(TOKEN).await;
    let (bot, _rx) = TelegramBot::start(&config(&fake, &[CHAT]), token(), None).unwrap();
    fake.inject_429("sendMessage", 1);
    bot.notifier().send(CHAT, "filled 0.01 BTC").unwrap();
    fake.wait_sent(1, Duration::from_secs(5)).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let attempts = fake.send_attempts();
    assert_eq!(
        attempts.iter().map(|a| a.status).collect::<Vec<_>>(),
        [429, 200]
    );
    assert!(attempts.iter().all(|a| a.text == "filled 0.01 BTC"));
    let gap = attempts[1].at - attempts[0].at;
    assert!(gap >= Duration::from_millis(950), "resent after {gap:?}");
    assert_eq!(fake.sent().len(), 1);
    assert_eq!(bot.stats().rate_limited.load(Ordering::Relaxed), 1);

    bot.shutdown(Duration::from_secs(1)).await.unwrap();

    // A 429 on getUpdates: polling waits retry_after, then goes on.
    fake.inject_429("getUpdates", 1);
    let t0 = std::time::Instant::now();
    let (bot, mut rx) = TelegramBot::start(&config(&fake, &[CHAT]), token(), None).unwrap();
    fake.push_message(CHAT, "/status");
    assert_eq!(chat_and_command(next(&mut rx).await).1, BotCommand::Status);
    assert!(
        t0.elapsed() >= Duration::from_millis(950),
        "{:?}",
        t0.elapsed()
    );
    assert_eq!(bot.stats().rate_limited.load(Ordering::Relaxed), 1);
    bot.shutdown(Duration::from_secs(1)).await.unwrap();
}

#[tokio::test]
async fn long_texts_are_split_and_html_is_escaped() {
    let fake = FakeTelegram::start(TOKEN).await;
    let (bot, _rx) = TelegramBot::start(&config(&fake, &[CHAT]), token(), None).unwrap();
    let n = bot.notifier();
    let text = format!("<BTC> & \"ETH\"\n{}", "line of a long report\n".repeat(300));
    n.send(CHAT, text.as_str()).unwrap();
    n.send(
        43,
        MessageText::html(format!("<b>{}</b> filled", escape_html("a<b&c"))),
    )
    .unwrap();
    let sent = fake.wait_sent(3, Duration::from_secs(5)).await;
    let parts: Vec<_> = sent.iter().filter(|m| m.chat_id == CHAT).collect();
    assert_eq!(parts.len(), 2);
    assert!(parts.iter().all(|m| m.text.encode_utf16().count() <= 4096
        && m.text.ends_with('\n')
        && m.parse_mode.as_deref() == Some("HTML")));
    let joined: String = parts.iter().map(|m| m.text.as_str()).collect();
    assert_eq!(joined, escape_html(&text));
    assert!(joined.starts_with("&lt;BTC&gt; &amp; \"ETH\"\n"));
    let html = sent.iter().find(|m| m.chat_id == 43).unwrap();
    assert_eq!(html.text, "<b>a&lt;b&amp;c</b> filled");
    // The fake refuses HTML that does not parse: nothing failed.
    assert_eq!(bot.stats().send_failed.load(Ordering::Relaxed), 0);
    assert!(fake.send_attempts().iter().all(|a| a.status == 200));
    bot.shutdown(Duration::from_secs(1)).await.unwrap();
}

#[tokio::test]
async fn a_second_poller_is_a_clear_conflict() {
    let fake = FakeTelegram::start(TOKEN).await;
    let cfg = config(&fake, &[CHAT]);
    let (first, mut rx1) = TelegramBot::start(&cfg, token(), None).unwrap();
    fake.wait_polls(1, Duration::from_secs(5)).await;
    let (second, mut rx2) = TelegramBot::start(&cfg, token(), None).unwrap();
    // The older poll is ended with 409: the first bot stops, its inputs end.
    assert!(tokio::time::timeout(Duration::from_secs(5), rx1.recv())
        .await
        .unwrap()
        .is_none());
    eventually(|| !first.is_polling()).await;
    let err = first.shutdown(Duration::from_secs(1)).await.unwrap_err();
    assert!(matches!(err, TelegramError::Conflict { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(msg.contains("409") && msg.contains("only one"), "{msg}");
    assert!(!msg.contains(TOKEN));
    fake.push_message(CHAT, "/pnl");
    assert_eq!(chat_and_command(next(&mut rx2).await).1, BotCommand::Pnl);
    second.shutdown(Duration::from_secs(1)).await.unwrap();
}

#[tokio::test]
async fn the_token_never_shows() {
    let fake = FakeTelegram::start(TOKEN).await;
    let wrong = "999999:WRONG-secret";
    // A refused token ends polling with an error that does not show it.
    let (bot, mut rx) =
        TelegramBot::start(&config(&fake, &[CHAT]), BotToken::new(wrong).unwrap(), None).unwrap();
    assert!(!format!("{bot:?}").contains(wrong));
    assert!(tokio::time::timeout(Duration::from_secs(5), rx.recv())
        .await
        .unwrap()
        .is_none());
    let err = bot.shutdown(Duration::from_secs(1)).await.unwrap_err();
    assert!(
        matches!(err, TelegramError::Unauthorized { code: 401, .. }),
        "{err:?}"
    );
    for shown in [err.to_string(), format!("{err:?}")] {
        assert!(
            !shown.contains(wrong) && !shown.contains("WRONG"),
            "{shown}"
        );
    }
    assert!(fake.unauthorized() >= 1);

    // Transport errors (nothing listens) carry no URL with the token.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let client = TelegramClient::new(&base, token()).unwrap();
    assert!(!format!("{client:?}").contains(TOKEN));
    let errs = [
        client.get_updates(Some(5), 0).await.unwrap_err(),
        client.send_message(CHAT, "x", &[]).await.unwrap_err(),
        client.answer_callback_query("cb1", None).await.unwrap_err(),
    ];
    for err in errs {
        assert!(matches!(err, TelegramError::Transport { .. }), "{err:?}");
        for shown in [err.to_string(), format!("{err:?}")] {
            assert!(
                !shown.contains(TOKEN) && !shown.contains("secret"),
                "{shown}"
            );
        }
    }

    // A missing token names its variable.
    let cfg = TelegramConfig {
        token_env: "CRYPTOFLOW_TEST_TELEGRAM_TOKEN_UNSET".into(),
        ..Default::default()
    };
    let err = cfg.token().unwrap_err();
    assert!(
        err.to_string()
            .contains("CRYPTOFLOW_TEST_TELEGRAM_TOKEN_UNSET"),
        "{err}"
    );
}
