fn main() {
    println!("cart-worker: the job runner arrives with the jobs module");
}
