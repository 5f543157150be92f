pub mod rtmpt;
