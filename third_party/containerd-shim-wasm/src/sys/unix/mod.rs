pub mod container;

mod pid_fd;
